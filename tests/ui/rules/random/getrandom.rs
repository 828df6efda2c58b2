//! `getrandom` in a #[handle] and an #[apply] body, in every form: short path, full path,
//! in a closure, inside a macro argument, as a function value.

use getrandom::getrandom;
use serde::{Deserialize, Serialize};

// A stand-in for the `getrandom` crate with its real paths: the check reads paths, not types.
#[allow(dead_code)]
mod getrandom {
    pub fn getrandom(_buf: &mut [u8]) -> Result<(), ()> {
        Ok(())
    }
    pub fn u64() -> Result<u64, ()> {
        Ok(0)
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
        let _short = getrandom(&mut [0u8; 8]);
        let _full = getrandom::u64();
        let _in_closure = (0..1).map(|_| getrandom(&mut [0u8; 8])).count();
        let _in_macro = format!("{:?}", getrandom(&mut [0u8; 8]));
        let _as_value = getrandom::u64;
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        let _short = getrandom(&mut [0u8; 8]);
        let _full = getrandom::u64();
        let _in_closure = (0..1).map(|_| getrandom(&mut [0u8; 8])).count();
        let _in_macro = format!("{:?}", getrandom(&mut [0u8; 8]));
        let _as_value = getrandom::u64;
        self.n = e.n;
    }
}

fn main() {}
