//! What the compile-time check cannot see, so it passes here: a module-level
//! `use … as` alias, a free helper function beside the impl, and a nested item.
//! The test kit's replay check backs these at test time; clippy's
//! `disallowed-methods` catches them crate-wide.

use serde::{Deserialize, Serialize};
use std::time::SystemTime as Clock;

#[derive(factum::Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Opened {
    pub n: u64,
}

#[derive(Clone, Debug)]
pub struct Open;

#[derive(Default, Clone, Debug)]
pub struct Account {
    n: u64,
    seen: u128,
}

fn seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[factum::entity]
impl Account {
    #[handle]
    fn open(&self, _cmd: Open) -> Opened {
        let _alias = Clock::now();
        Opened { n: seconds() }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        fn nested() -> u128 {
            std::time::Instant::now().elapsed().as_nanos()
        }
        self.n = e.n;
        self.seen = nested();
    }
}

fn main() {}
