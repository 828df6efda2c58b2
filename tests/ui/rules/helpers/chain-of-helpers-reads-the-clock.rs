//! A chain of helpers (`self.total()` → `self.offset()` → `Self::stamp()`) ends in a
//! clock read: reported on the handler's call, naming every link.

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
        Opened { n: self.total() }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        self.n = e.n + self.total();
    }

    fn total(&self) -> u64 {
        self.n + self.offset()
    }

    fn offset(&self) -> u64 {
        Self::stamp()
    }

    fn stamp() -> u64 {
        std::time::Instant::now().elapsed().as_secs()
    }
}

#[view(name = "summary")]
impl Summary {
    #[on]
    fn opened(&mut self, e: &Opened) {
        self.n = e.n + self.total();
    }

    fn total(&self) -> u64 {
        self.n + self.offset()
    }

    fn offset(&self) -> u64 {
        Self::stamp()
    }

    fn stamp() -> u64 {
        std::time::Instant::now().elapsed().as_secs()
    }
}

fn main() {}
