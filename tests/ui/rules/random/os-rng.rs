//! `OsRng` in a #[handle] and an #[apply] body, in every form: short path, full path,
//! in a closure, inside a macro argument, as a function value.

use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};

// A stand-in for the `rand` crate with its real paths: the check reads paths, not types.
#[allow(dead_code)]
mod rand {
    pub fn random<T: Default>() -> T {
        T::default()
    }
    pub fn thread_rng() -> rngs::ThreadRng {
        rngs::ThreadRng
    }
    pub fn rng() -> rngs::ThreadRng {
        rngs::ThreadRng
    }
    pub mod rngs {
        #[derive(Debug, Default)]
        pub struct ThreadRng;
        #[derive(Debug, Default)]
        pub struct OsRng;
        impl OsRng {
            pub fn next_u64(&mut self) -> u64 {
                0
            }
        }
        #[derive(Debug)]
        pub struct StdRng;
        impl StdRng {
            pub fn from_entropy() -> Self {
                StdRng
            }
            pub fn from_os_rng() -> Self {
                StdRng
            }
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
        let _short = OsRng.next_u64();
        let _full = rand::rngs::OsRng::default().next_u64();
        let _in_closure = (0..1).map(|_| OsRng.next_u64()).count();
        let _in_macro = format!("{:?}", OsRng.next_u64());
        let _as_value = OsRng;
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        let _short = OsRng.next_u64();
        let _full = rand::rngs::OsRng::default().next_u64();
        let _in_closure = (0..1).map(|_| OsRng.next_u64()).count();
        let _in_macro = format!("{:?}", OsRng.next_u64());
        let _as_value = OsRng;
        self.n = e.n;
    }
}

fn main() {}
