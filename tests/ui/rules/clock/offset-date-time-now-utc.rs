//! `OffsetDateTime::now_utc` in a #[handle] and an #[apply] body, in every form: short path, full path,
//! in a closure, inside a macro argument, as a function value.

use time::OffsetDateTime;
use serde::{Deserialize, Serialize};

// A stand-in for the `time` crate with its real paths: the check reads paths, not types.
#[allow(dead_code)]
mod time {
    pub struct OffsetDateTime;
    impl OffsetDateTime {
        pub fn now_utc() -> u64 {
            0
        }
        pub fn now_local() -> Result<u64, ()> {
            Ok(0)
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
        let _short = OffsetDateTime::now_utc();
        let _full = time::OffsetDateTime::now_utc();
        let _in_closure = (0..1).map(|_| OffsetDateTime::now_utc()).count();
        let _in_macro = format!("{:?}", OffsetDateTime::now_utc());
        let _as_value = OffsetDateTime::now_utc;
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        let _short = OffsetDateTime::now_utc();
        let _full = time::OffsetDateTime::now_utc();
        let _in_closure = (0..1).map(|_| OffsetDateTime::now_utc()).count();
        let _in_macro = format!("{:?}", OffsetDateTime::now_utc());
        let _as_value = OffsetDateTime::now_utc;
        self.n = e.n;
    }
}

fn main() {}
