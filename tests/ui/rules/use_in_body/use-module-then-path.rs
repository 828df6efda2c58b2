//! `use std::fs;` inside a body, then `fs::write(…)`: read as `std::fs::write`, which an
//! #[apply] and a view's #[on] may not call. (A #[handle] may touch files; `use std::env;`
//! then `env::var(…)` is forbidden there too.)

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
        use std::env;
        let home = env::var("HOME").map_or(0, |h| h.len());
        Opened { n: home as u64 }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        use std::fs;
        let _ = fs::write("applied.log", b"x");
        self.n = e.n;
    }
}

#[view(name = "summary")]
impl Summary {
    #[on]
    fn opened(&mut self, e: &Opened) {
        use std::fs;
        let _ = fs::write("folded.log", b"x");
        self.n = e.n;
    }
}

fn main() {}
