//! Fields, locals, closures and methods named `now` or `random`, a user type's
//! `now()` method, and a user module's `now` function are not the wall clock.

use serde::{Deserialize, Serialize};

#[derive(factum::Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Ticked {
    pub now: u64,
    pub random: u64,
}

#[derive(Clone, Debug)]
pub struct Tick;

pub struct Clock {
    now: u64,
}

impl Clock {
    pub fn now(&self) -> u64 {
        self.now
    }
}

mod schedule {
    pub fn now() -> u64 {
        7
    }
}

#[derive(Default, Clone, Debug)]
pub struct Counter {
    now: u64,
    random: u64,
}

#[factum::entity]
impl Counter {
    #[handle]
    fn tick(&self, _cmd: Tick) -> Ticked {
        let clock = Clock { now: self.now };
        let now = || clock.now() + 1;
        let random = self.random.wrapping_mul(31);
        Ticked { now: now() + schedule::now(), random }
    }

    #[apply]
    fn ticked(&mut self, e: &Ticked) {
        let now = e.now;
        let random = |seed: u64| seed ^ e.random;
        self.now = now;
        self.random = random(self.now);
    }
}

fn main() {}
