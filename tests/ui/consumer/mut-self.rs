use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Withdrawn {
    pub amount: u64,
}

pub struct Alerts {
    seen: u64,
}

#[consumer]
impl Alerts {
    #[on]
    async fn withdrawn(&mut self, _e: &Withdrawn) {
        self.seen += 1;
    }
}

fn main() {}
