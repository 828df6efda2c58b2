use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Clone, Debug, Serialize, Deserialize)]
pub struct Order {
    paid: bool,
}

#[derive(Clone, Debug)]
pub struct Place;

#[derive(Clone, Debug)]
pub struct Accept;

#[workflow]
impl Order {
    #[start]
    fn start(&self, _cmd: Place) -> Then<Self> {
        Then::pause()
    }

    #[signal]
    fn accept(&self, _cmd: Accept) -> Then<Self> {
        println!("accepted");
        Then::to(Self::pay, ())
    }

    #[step]
    async fn pay(&self, _ctx: &StepContext) -> Then<Self> {
        Then::end()
    }
}

fn main() {}
