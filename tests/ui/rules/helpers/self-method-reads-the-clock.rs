//! A helper called as `self.stamp()` reads the wall clock: reported on the call in a
//! #[handle], an #[apply] and a view's #[on], with the chain of calls.

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
        Opened { n: self.stamp() }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        self.n = e.n + self.stamp();
    }

    fn stamp(&self) -> u64 {
        std::time::SystemTime::now().elapsed().map_or(0, |d| d.as_secs())
    }
}

#[view(name = "summary")]
impl Summary {
    #[on]
    fn opened(&mut self, e: &Opened) {
        self.n = e.n + self.stamp();
    }

    fn stamp(&self) -> u64 {
        std::time::SystemTime::now().elapsed().map_or(0, |d| d.as_secs())
    }
}

fn main() {}
