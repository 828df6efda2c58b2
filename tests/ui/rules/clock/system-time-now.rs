//! `SystemTime::now` in a #[handle] and an #[apply] body, in every form: short path, full path,
//! in a closure, inside a macro argument, as a function value.

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

#[factum::entity]
impl Account {
    #[handle]
    fn open(&self, _cmd: Open) -> Opened {
        let _short = SystemTime::now();
        let _full = ::std::time::SystemTime::now();
        let _in_closure = (0..1).map(|_| SystemTime::now()).count();
        let _in_macro = format!("{:?}", SystemTime::now());
        let _in_macro_tokens = vec![SystemTime::now(); 2];
        let _as_value = SystemTime::now;
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        let _short = SystemTime::now();
        let _full = ::std::time::SystemTime::now();
        let _in_closure = (0..1).map(|_| SystemTime::now()).count();
        let _in_macro = format!("{:?}", SystemTime::now());
        let _in_macro_tokens = vec![SystemTime::now(); 2];
        let _as_value = SystemTime::now;
        self.n = e.n;
    }
}

fn main() {}
