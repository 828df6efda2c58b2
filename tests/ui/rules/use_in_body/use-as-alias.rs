//! `use std::time::SystemTime as Clock;` inside a body, then `Clock::now()`: the alias is
//! read through, in a #[handle], an #[apply], a view's #[on] and a helper.

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
        use std::time::SystemTime as Clock;
        let _ = Clock::now();
        Opened { n: self.stamp() }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        use std::time::SystemTime as Clock;
        let _ = Clock::now();
        self.n = e.n;
    }

    fn stamp(&self) -> u64 {
        use std::time::{SystemTime as Wall, UNIX_EPOCH};
        Wall::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }
}

#[view(name = "summary")]
impl Summary {
    #[on]
    fn opened(&mut self, e: &Opened) {
        use std::time::SystemTime as Clock;
        let _ = Clock::now();
        self.n = e.n;
    }
}

fn main() {}
