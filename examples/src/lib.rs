//! Runnable factum domains.
