//! `thread::spawn` in a #[handle] and an #[apply] body, in every form: short path, full path,
//! in a closure, inside a macro argument, as a function value.

use std::thread;
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
        let _short = thread::spawn(|| ());
        let _full = ::std::thread::spawn(|| ());
        let _in_closure = (0..1).map(|_| thread::spawn(|| ())).count();
        let _in_macro = format!("{:?}", thread::spawn(|| ()));
        let _as_value = thread::spawn::<fn(), ()>;
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        let _short = thread::spawn(|| ());
        let _full = ::std::thread::spawn(|| ());
        let _in_closure = (0..1).map(|_| thread::spawn(|| ())).count();
        let _in_macro = format!("{:?}", thread::spawn(|| ()));
        let _as_value = thread::spawn::<fn(), ()>;
        self.n = e.n;
    }
}

fn main() {}
