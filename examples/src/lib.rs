//! Runnable factum domains: the talk's bank account and shopping cart.
#![forbid(unsafe_code)]

pub mod bank;
pub mod cart;
pub mod fraud;
pub mod progress;
