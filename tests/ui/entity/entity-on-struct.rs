use factum::prelude::*;

#[entity]
#[derive(Default, Clone, Debug)]
pub struct Account {
    balance: u64,
}

fn main() {}
