//! The runtime: sends commands to entities over a store (being written).
