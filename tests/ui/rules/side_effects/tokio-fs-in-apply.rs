//! `tokio::fs` in an #[apply] body, in every form: short path, full path, in a closure,
//! inside a macro argument, as a function value. (#[handle] may use it.)

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
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        let _short = tokio::fs::read("f");
        let _full = ::tokio::fs::File::open("f");
        let _in_closure = (0..1).map(|_| tokio::fs::read("f")).count();
        let _in_macro = vec![tokio::fs::read("f")];
        let _as_value = ["f"].map(tokio::fs::read);
        self.n = e.n;
    }
}

fn main() {}
