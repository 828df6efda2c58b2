//! `use rand::random;` inside a body, then a bare `random()`: read as `rand::random`.

use factum::prelude::*;
use serde::{Deserialize, Serialize};

// A stand-in for the `rand` crate with its real path: the check reads paths, not types.
mod rand {
    pub fn random<T: Default>() -> T {
        T::default()
    }
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Opened {
    pub n: u64,
}

#[derive(Clone, Debug)]
pub struct Open;

#[derive(Default, Clone, Debug)]
pub struct Account {
    n: u64,
}

#[derive(Default, Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    n: u64,
}

#[entity]
impl Account {
    #[handle]
    fn open(&self, _cmd: Open) -> Opened {
        use rand::random;
        Opened { n: random() }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        use rand::random;
        self.n = e.n + random::<u64>();
    }
}

#[view(name = "summary")]
impl Summary {
    #[on]
    fn opened(&mut self, e: &Opened) {
        use rand::random;
        self.n = e.n + random::<u64>();
    }
}

fn main() {}
