//! `spawn_blocking` in a #[handle] and an #[apply] body, in every form: short path, full path,
//! in a closure, inside a macro argument, as a function value.

use tokio::task::spawn_blocking;
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
        let _short = spawn_blocking(|| ());
        let _full = ::tokio::task::spawn_blocking(|| ());
        let _in_closure = (0..1).map(|_| spawn_blocking(|| ())).count();
        let _in_macro = format!("{:?}", spawn_blocking(|| ()));
        let _as_value = spawn_blocking::<fn(), ()>;
        Opened { n: self.n }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        let _short = spawn_blocking(|| ());
        let _full = ::tokio::task::spawn_blocking(|| ());
        let _in_closure = (0..1).map(|_| spawn_blocking(|| ())).count();
        let _in_macro = format!("{:?}", spawn_blocking(|| ()));
        let _as_value = spawn_blocking::<fn(), ()>;
        self.n = e.n;
    }
}

fn main() {}
