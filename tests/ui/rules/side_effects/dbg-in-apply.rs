//! `dbg!` in an #[apply] body: as written, fully qualified, in a closure, inside
//! another macro's arguments. (#[handle] may print.)

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
        dbg!(e.n);
        std::dbg!(e.n);
        let _in_closure = (0..1).map(|_| dbg!(e.n)).count();
        let _in_macro = vec![dbg!(e.n)];
        let _in_macro_tokens = vec![dbg!(e.n); 1];
        self.n = e.n;
    }
}

fn main() {}
