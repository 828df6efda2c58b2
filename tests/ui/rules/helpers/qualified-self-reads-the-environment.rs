//! A helper called as `<Self>::home()` reads the process environment: reported on the
//! call in each site.

use factum::prelude::*;
use serde::{Deserialize, Serialize};

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
        Opened { n: <Self>::home() as u64 }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        self.n = e.n + <Self>::home() as u64;
    }

    fn home() -> usize {
        std::env::var("HOME").map_or(0, |h| h.len())
    }
}

#[view(name = "summary")]
impl Summary {
    #[on]
    fn opened(&mut self, e: &Opened) {
        self.n = e.n + <Self>::home() as u64;
    }

    fn home() -> usize {
        std::env::var("HOME").map_or(0, |h| h.len())
    }
}

fn main() {}
