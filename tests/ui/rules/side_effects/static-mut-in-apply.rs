//! An #[apply] body that counts its calls in a `static mut`: replay would count again.

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

static mut APPLIED: u64 = 0;

#[factum::entity]
impl Account {
    #[handle]
    fn open(&self, _cmd: Open) -> Opened {
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        unsafe {
            APPLIED += 1;
        }
        self.n = e.n;
    }
}

fn main() {}
