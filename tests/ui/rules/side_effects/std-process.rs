//! `std::process` in a #[handle] and an #[apply] body, in every form: short path, full path,
//! in a closure, inside a macro argument, as a function value.

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
        let _short = std::process::id();
        let _full = ::std::process::Command::new("ls");
        let _in_closure = (0..1).map(|_| std::process::id()).count();
        let _in_macro = format!("{:?}", std::process::id());
        let _as_value = std::process::id;
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        let _short = std::process::id();
        let _full = ::std::process::Command::new("ls");
        let _in_closure = (0..1).map(|_| std::process::id()).count();
        let _in_macro = format!("{:?}", std::process::id());
        let _as_value = std::process::id;
        self.n = e.n;
    }
}

fn main() {}
