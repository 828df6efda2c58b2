//! Three rules broken in one #[handle] body: all three are reported, not only the first.

use std::time::SystemTime;

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

// A stand-in for the `uuid` crate with its real paths: the check reads paths, not types.
#[allow(dead_code)]
mod uuid {
    pub struct Uuid;
    impl Uuid {
        pub fn new_v4() -> Self {
            Uuid
        }
    }
}

#[factum::entity]
impl Account {
    #[handle]
    fn open(&self, _cmd: Open) -> Opened {
        let _at = SystemTime::now();
        let _id = uuid::Uuid::new_v4();
        let _home = std::env::var("HOME");
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        self.n = e.n;
    }
}

fn main() {}
