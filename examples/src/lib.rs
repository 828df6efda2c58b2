//! Runnable factum domains: the talk's bank account, shopping cart and money
//! transfer (a workflow), and the flagship, the chess service.
#![forbid(unsafe_code)]

pub mod bank;
pub mod cart;
pub mod chess;
pub mod fraud;
pub mod progress;
pub mod transfer;
