//! Interior mutability hidden in generic arguments is found too, one error per type.

use std::cell::Cell;
use std::sync::{Arc, Mutex};

#[derive(factum::Event)]
pub struct Deposited {
    pub amount: u64,
    pub history: Vec<Cell<u8>>,
    pub shared: Arc<Mutex<u64>>,
    pub pair: (u8, std::sync::atomic::AtomicBool),
}

fn main() {}
