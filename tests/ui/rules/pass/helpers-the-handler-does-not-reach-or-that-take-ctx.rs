//! Helpers of the same impl block that are fine: one no handler reaches reads
//! the wall clock (nothing says where it runs), and one a handler reaches takes
//! `ctx` and reads the time from it.

use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Opened {
    pub at: Timestamp,
}

#[derive(Clone, Debug)]
pub struct Open;

#[derive(Default, Clone, Debug)]
pub struct Account {
    at: Option<Timestamp>,
}

#[entity]
impl Account {
    #[handle]
    fn open(&self, _cmd: Open, ctx: &Context) -> Opened {
        Opened { at: self.stamp(ctx) }
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        self.at = Some(e.at);
    }

    fn stamp(&self, ctx: &Context) -> Timestamp {
        ctx.now()
    }

    /// Called from `main`, outside any handler.
    pub fn age_in_seconds(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .saturating_sub(self.at.map_or(0, |at| at.as_micros().unsigned_abs() / 1_000_000))
    }
}

fn main() {
    let _ = Account::default().age_in_seconds();
}
