//! Interior mutability hidden in generic arguments is found too, one error per type.
//! The type derives what its fields allow; the errors after the first are the
//! supertraits of `Event` that a type with this field cannot meet.

use std::cell::Cell;
use std::sync::{Arc, Mutex};

#[derive(factum::Event, Debug)]
pub struct Deposited {
    pub amount: u64,
    pub history: Vec<Cell<u8>>,
    pub shared: Arc<Mutex<u64>>,
    pub pair: (u8, std::sync::atomic::AtomicBool),
}

fn main() {}
