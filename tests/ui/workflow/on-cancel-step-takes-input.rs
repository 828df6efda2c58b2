use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Clone, Debug, Serialize, Deserialize)]
pub struct Order {
    paid: bool,
}

#[derive(Clone, Debug)]
pub struct Place;

#[workflow(on_cancel = refund)]
impl Order {
    #[start]
    fn start(&self, _cmd: Place) -> Then<Self> {
        Then::to(Self::pay, ())
    }

    #[step]
    async fn pay(&self, _ctx: &StepContext) -> Then<Self> {
        Then::end()
    }

    #[step]
    async fn refund(&self, _ctx: &StepContext, amount: u64) -> Then<Self> {
        let _ = amount;
        Then::end()
    }
}

fn main() {}
