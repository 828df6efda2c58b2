//! `Uuid::new_v7` in a #[handle] and an #[apply] body, in every form: short path, full path,
//! in a closure, inside a macro argument, as a function value.

use uuid::Uuid;
use serde::{Deserialize, Serialize};

// A stand-in for the `uuid` crate with its real paths: the check reads paths, not types.
#[allow(dead_code)]
mod uuid {
    #[derive(Debug)]
    pub struct Uuid;
    impl Uuid {
        pub fn new_v4() -> Self {
            Uuid
        }
        pub fn now_v1(_node: &[u8; 6]) -> Self {
            Uuid
        }
        pub fn now_v6(_node: &[u8; 6]) -> Self {
            Uuid
        }
        pub fn now_v7() -> Self {
            Uuid
        }
        pub fn new_v7(_ts: u64) -> Self {
            Uuid
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
        let _short = Uuid::new_v7(0);
        let _full = uuid::Uuid::new_v7(0);
        let _in_closure = (0..1).map(|_| Uuid::new_v7(0)).count();
        let _in_macro = format!("{:?}", Uuid::new_v7(0));
        let _as_value = Uuid::new_v7;
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        let _short = Uuid::new_v7(0);
        let _full = uuid::Uuid::new_v7(0);
        let _in_closure = (0..1).map(|_| Uuid::new_v7(0)).count();
        let _in_macro = format!("{:?}", Uuid::new_v7(0));
        let _as_value = Uuid::new_v7;
        self.n = e.n;
    }
}

fn main() {}
