//! `Ulid::generate` in a #[handle] and an #[apply] body, in every form: short path, full path,
//! in a closure, inside a macro argument, as a function value.

use ulid::Ulid;
use serde::{Deserialize, Serialize};

// A stand-in for the `ulid` crate with its real paths: the check reads paths, not types.
#[allow(dead_code)]
mod ulid {
    #[derive(Debug)]
    pub struct Ulid;
    impl Ulid {
        #[allow(clippy::new_without_default)]
        pub fn new() -> Self {
            Ulid
        }
        pub fn generate() -> Self {
            Ulid
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
        let _short = Ulid::generate();
        let _full = ulid::Ulid::generate();
        let _in_closure = (0..1).map(|_| Ulid::generate()).count();
        let _in_macro = format!("{:?}", Ulid::generate());
        let _as_value = Ulid::generate;
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        let _short = Ulid::generate();
        let _full = ulid::Ulid::generate();
        let _in_closure = (0..1).map(|_| Ulid::generate()).count();
        let _in_macro = format!("{:?}", Ulid::generate());
        let _as_value = Ulid::generate;
        self.n = e.n;
    }
}

fn main() {}
