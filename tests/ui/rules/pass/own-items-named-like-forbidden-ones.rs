//! The user's own `mod fs` and `fn random`, in the crate and in a body: without
//! `use std::fs` or `use rand::random`, `fs::write` and `random()` are the
//! user's items, not the forbidden ones, in a #[handle], an #[apply] and a view's #[on].

use factum::prelude::*;
use serde::{Deserialize, Serialize};

/// A log kept in memory, not a file system.
mod fs {
    pub fn write(log: &mut Vec<u64>, n: u64) {
        log.push(n);
    }
}

/// A deterministic "random" number, derived from its input.
fn random(seed: u64) -> u64 {
    seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1)
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Opened {
    pub n: u64,
}

#[derive(Clone, Debug)]
pub struct Open {
    pub seed: u64,
}

#[derive(Default, Clone, Debug)]
pub struct Account {
    log: Vec<u64>,
    pin: u64,
}

#[entity]
impl Account {
    #[handle]
    fn open(&self, cmd: Open) -> Opened {
        Opened { n: random(cmd.seed) }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        fs::write(&mut self.log, e.n);
        self.pin = self.derive(e.n);
    }

    fn derive(&self, n: u64) -> u64 {
        fn random(n: u64) -> u64 {
            n % 10_000
        }
        random(n)
    }
}

#[derive(Default, Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    log: Vec<u64>,
}

#[view(name = "summary")]
impl Summary {
    #[on]
    fn opened(&mut self, e: &Opened) {
        mod fs {
            pub fn write(log: &mut Vec<u64>, n: u64) {
                log.push(n);
            }
        }
        fs::write(&mut self.log, random(e.n));
    }
}

fn main() {}
