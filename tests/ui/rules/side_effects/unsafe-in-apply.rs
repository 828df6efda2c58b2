//! An `unsafe` block in an #[apply] body: as written, in a closure, inside a macro
//! argument, inside macro tokens. (#[handle] may use `unsafe`.)

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

static mut COUNTER: u64 = 0;

#[factum::entity]
impl Account {
    #[handle]
    fn open(&self, _cmd: Open) -> Opened {
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        let _direct = unsafe { COUNTER };
        let _in_closure = (0..1).map(|_| unsafe { COUNTER }).count();
        let _in_macro = format!("{}", unsafe { COUNTER });
        let _in_macro_tokens = vec![unsafe { COUNTER }; 1];
        self.n = e.n;
    }
}

fn main() {}
