//! Shared helpers for the integration tests: a hand-written entity (no macros),
//! which is also the baseline the generated dispatch is measured against.

pub mod child;
pub mod handwritten;
pub mod occupancy;
pub mod pg;
pub mod timers;
pub mod views;
