//! `UNIX_EPOCH.elapsed()` in a #[handle] and an #[apply] body, in every form: short path, full path,
//! in a closure, inside a macro argument, as a function value.

use std::time::UNIX_EPOCH;
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
        let _short = UNIX_EPOCH.elapsed();
        let _full = ::std::time::SystemTime::UNIX_EPOCH.elapsed();
        let _in_closure = (0..1).map(|_| UNIX_EPOCH.elapsed()).count();
        let _in_macro = format!("{:?}", UNIX_EPOCH.elapsed());
        let _as_value = std::time::SystemTime::elapsed;
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        let _short = UNIX_EPOCH.elapsed();
        let _full = ::std::time::SystemTime::UNIX_EPOCH.elapsed();
        let _in_closure = (0..1).map(|_| UNIX_EPOCH.elapsed()).count();
        let _in_macro = format!("{:?}", UNIX_EPOCH.elapsed());
        let _as_value = std::time::SystemTime::elapsed;
        self.n = e.n;
    }
}

fn main() {}
