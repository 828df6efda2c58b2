//! Runnable factum domains: the talk's bank account, shopping cart, money
//! transfer and ticket holding (workflows), and the flagship, the chess service.
#![forbid(unsafe_code)]

pub mod bank;
pub mod cart;
pub mod chess;
pub mod fraud;
pub mod progress;
pub mod tickets;
pub mod transfer;
