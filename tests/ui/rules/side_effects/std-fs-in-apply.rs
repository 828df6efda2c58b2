//! `std::fs` in an #[apply] body, in every form: short path, full path, in a closure,
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
        let _short = std::fs::read("f");
        let _full = ::std::fs::File::open("f");
        let _in_closure = (0..1).map(|_| std::fs::read("f")).count();
        let _in_macro = format!("{:?}", std::fs::read("f"));
        let _as_value = std::fs::read_to_string::<&str>;
        self.n = e.n;
    }
}

fn main() {}
