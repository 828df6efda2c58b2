//! `Zoned::now` in a #[handle] and an #[apply] body, in every form: short path, full path,
//! in a closure, inside a macro argument, as a function value.

use jiff::Zoned;
use serde::{Deserialize, Serialize};

// A stand-in for the `jiff` crate with its real paths: the check reads paths, not types.
#[allow(dead_code)]
mod jiff {
    pub struct Timestamp;
    impl Timestamp {
        pub fn now() -> u64 {
            0
        }
    }
    pub struct Zoned;
    impl Zoned {
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
        let _short = Zoned::now();
        let _full = jiff::Zoned::now();
        let _in_closure = (0..1).map(|_| Zoned::now()).count();
        let _in_macro = format!("{:?}", Zoned::now());
        let _as_value = Zoned::now;
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        let _short = Zoned::now();
        let _full = jiff::Zoned::now();
        let _in_closure = (0..1).map(|_| Zoned::now()).count();
        let _in_macro = format!("{:?}", Zoned::now());
        let _as_value = Zoned::now;
        self.n = e.n;
    }
}

fn main() {}
