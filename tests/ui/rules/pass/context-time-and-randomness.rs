//! The allowed alternatives: a handler reads the time and draws randomness from
//! `ctx` and records them in the event; the apply reads them back from the event.

use factum::{Context, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(factum::Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Opened {
    pub at: Timestamp,
    pub id: u128,
    pub pin: u64,
}

#[derive(Clone, Debug)]
pub struct Open;

#[derive(Default, Clone, Debug)]
pub struct Account {
    opened_at: Option<Timestamp>,
    id: u128,
    pin: u64,
}

#[factum::entity]
impl Account {
    #[handle]
    fn open(&self, _cmd: Open, ctx: &Context) -> Opened {
        Opened { at: ctx.now(), id: ctx.uuid().as_u128(), pin: ctx.random_u64() % 10_000 }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        self.opened_at = Some(e.at);
        self.id = e.id;
        self.pin = e.pin;
    }
}

fn main() {}
