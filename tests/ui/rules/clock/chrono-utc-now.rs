//! `Utc::now` in a #[handle] and an #[apply] body, in every form: short path, full path,
//! in a closure, inside a macro argument, as a function value.

use chrono::Utc;
use serde::{Deserialize, Serialize};

// A stand-in for the `chrono` crate with its real paths: the check reads paths, not types.
#[allow(dead_code)]
mod chrono {
    pub struct Utc;
    impl Utc {
        pub fn now() -> u64 {
            0
        }
    }
    pub struct Local;
    impl Local {
        pub fn now() -> u64 {
            0
        }
    }
}

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
        let _short = Utc::now();
        let _full = chrono::Utc::now();
        let _in_closure = (0..1).map(|_| Utc::now()).count();
        let _in_macro = format!("{:?}", Utc::now());
        let _as_value = Utc::now;
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        let _short = Utc::now();
        let _full = chrono::Utc::now();
        let _in_closure = (0..1).map(|_| Utc::now()).count();
        let _in_macro = format!("{:?}", Utc::now());
        let _as_value = Utc::now;
        self.n = e.n;
    }
}

fn main() {}
