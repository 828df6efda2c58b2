use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[view(name = "summary")]
#[derive(Default, Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    balance: u64,
}

fn main() {}
