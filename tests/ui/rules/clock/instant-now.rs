//! `Instant::now` in a #[handle] and an #[apply] body, in every form: short path, full path,
//! in a closure, inside a macro argument, as a function value.

use std::time::Instant;
use serde::{Deserialize, Serialize};

#[derive(factum::Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Opened {
    pub n: u64,
}

#[derive(Clone, Debug)]
pub struct Open;

#[derive(Default, Clone, Debug)]
pub struct Account {
    n: u64,
}

#[factum::entity]
impl Account {
    #[handle]
    fn open(&self, _cmd: Open) -> Opened {
        let _short = Instant::now();
        let _full = ::std::time::Instant::now();
        let _in_closure = (0..1).map(|_| Instant::now()).count();
        let _in_macro = format!("{:?}", Instant::now());
        let _as_value = Instant::now;
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        let _short = Instant::now();
        let _full = ::std::time::Instant::now();
        let _in_closure = (0..1).map(|_| Instant::now()).count();
        let _in_macro = format!("{:?}", Instant::now());
        let _as_value = Instant::now;
        self.n = e.n;
    }
}

fn main() {}
