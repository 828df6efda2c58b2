//! Printing is a side effect only where events are folded: a #[handle] body
//! runs once per command, so it may print (an #[apply] body may not).

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

#[factum::entity]
impl Account {
    #[handle]
    fn open(&self, _cmd: Open) -> Opened {
        println!("opening account with {}", self.n);
        Opened { n: self.n + 1 }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        self.n = e.n;
    }
}

fn main() {}
