//! `thread::sleep` in a #[handle] and an #[apply] body, in every form: short path, full path,
//! in a closure, inside a macro argument, as a function value.

use std::thread;
use std::time::Duration;
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
        let _short = thread::sleep(Duration::ZERO);
        let _full = ::std::thread::sleep(::std::time::Duration::ZERO);
        let _in_closure = (0..1).map(|_| thread::sleep(Duration::ZERO)).count();
        let _in_macro = format!("{:?}", thread::sleep(Duration::ZERO));
        let _as_value = thread::sleep;
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        let _short = thread::sleep(Duration::ZERO);
        let _full = ::std::thread::sleep(::std::time::Duration::ZERO);
        let _in_closure = (0..1).map(|_| thread::sleep(Duration::ZERO)).count();
        let _in_macro = format!("{:?}", thread::sleep(Duration::ZERO));
        let _as_value = thread::sleep;
        self.n = e.n;
    }
}

fn main() {}
