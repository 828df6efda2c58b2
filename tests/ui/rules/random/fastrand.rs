//! `fastrand::*` in a #[handle] and an #[apply] body, in every form: short path, full path,
//! in a closure, inside a macro argument, as a function value.

use serde::{Deserialize, Serialize};

// A stand-in for the `fastrand` crate with its real paths: the check reads paths, not types.
#[allow(dead_code)]
mod fastrand {
    pub fn u64(_range: std::ops::RangeFull) -> u64 {
        0
    }
    pub fn bool() -> bool {
        false
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
        let _short = fastrand::bool();
        let _full = crate::fastrand::u64(..);
        let _in_closure = (0..1).map(|_| fastrand::bool()).count();
        let _in_macro = format!("{:?}", fastrand::bool());
        let _as_value = fastrand::bool;
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        let _short = fastrand::bool();
        let _full = crate::fastrand::u64(..);
        let _in_closure = (0..1).map(|_| fastrand::bool()).count();
        let _in_macro = format!("{:?}", fastrand::bool());
        let _as_value = fastrand::bool;
        self.n = e.n;
    }
}

fn main() {}
