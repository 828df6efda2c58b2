//! An associated helper called as `Self::roll()` draws random numbers: reported on the
//! call in each site.

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
        Opened { n: Self::roll() }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        self.n = e.n + Self::roll();
    }

    fn roll() -> u64 {
        rand::random()
    }
}

#[view(name = "summary")]
impl Summary {
    #[on]
    fn opened(&mut self, e: &Opened) {
        self.n = e.n + Self::roll();
    }

    fn roll() -> u64 {
        rand::random()
    }
}

fn main() {}
