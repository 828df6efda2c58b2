use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Clone, Debug, Serialize, Deserialize)]
pub struct Hold {
    seat: String,
}

#[derive(Clone, Debug)]
pub struct Take;

#[workflow(timeout = "15m", on_timeout = Self::release)]
impl Hold {
    #[start]
    fn start(&self, _cmd: Take) -> Then<Self> {
        Then::to(Self::hold, ())
    }

    #[step]
    async fn hold(&self, _ctx: &StepContext) -> Then<Self> {
        Then::pause()
    }
}

fn main() {}
