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
    async fn withdrawn(&self, _e: &Withdrawn) {}

    #[on]
    async fn withdrawn_again(&self, _e: &Withdrawn) {}
}

fn main() {}
