use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Withdrawn {
    pub amount: u64,
}

pub struct Alerts;

#[consumer]
impl Alerts {
    #[on]
    async fn withdrawn(&self, _e: &Withdrawn, _ctx: ConsumerContext) {}
}

fn main() {}
