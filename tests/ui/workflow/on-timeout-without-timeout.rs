use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Clone, Debug, Serialize, Deserialize)]
pub struct Hold {
    seat: String,
}

#[derive(Clone, Debug)]
pub struct Take;

#[workflow(on_timeout = release)]
impl Hold {
    #[start]
    fn start(&self, _cmd: Take) -> Then<Self> {
        Then::to(Self::hold, ())
    }

    #[step]
    async fn hold(&self, _ctx: &StepContext) -> Then<Self> {
        Then::pause()
    }

    #[step]
    async fn release(&self, _ctx: &StepContext) -> Then<Self> {
        Then::end()
    }
}

fn main() {}
