//! `Timestamp::wall_clock` in a #[handle] and an #[apply] body, in every form: short path, full path,
//! in a closure, inside a macro argument, as a function value.

use factum::Timestamp;
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
        let _short = Timestamp::wall_clock();
        let _full = ::factum::Timestamp::wall_clock();
        let _in_closure = (0..1).map(|_| Timestamp::wall_clock()).count();
        let _in_macro = format!("{:?}", Timestamp::wall_clock());
        let _as_value = Timestamp::wall_clock;
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        let _short = Timestamp::wall_clock();
        let _full = ::factum::Timestamp::wall_clock();
        let _in_closure = (0..1).map(|_| Timestamp::wall_clock()).count();
        let _in_macro = format!("{:?}", Timestamp::wall_clock());
        let _as_value = Timestamp::wall_clock;
        self.n = e.n;
    }
}

fn main() {}
