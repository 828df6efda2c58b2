//! `tokio::time::sleep` in a #[handle] and an #[apply] body, in every form: short path, full path,
//! in a closure, inside a macro argument, as a function value.

use std::time::Duration;
use tokio::time;
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
        let _short = time::sleep(Duration::ZERO);
        let _full = ::tokio::time::sleep(Duration::ZERO);
        let _in_closure = (0..1).map(|_| time::sleep(Duration::ZERO)).count();
        let _in_macro = format!("{:?}", time::sleep(Duration::ZERO));
        let _as_value = time::sleep;
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        let _short = time::sleep(Duration::ZERO);
        let _full = ::tokio::time::sleep(Duration::ZERO);
        let _in_closure = (0..1).map(|_| time::sleep(Duration::ZERO)).count();
        let _in_macro = format!("{:?}", time::sleep(Duration::ZERO));
        let _as_value = time::sleep;
        self.n = e.n;
    }
}

fn main() {}
