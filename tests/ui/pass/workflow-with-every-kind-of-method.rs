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

#[derive(Debug, thiserror::Error)]
#[error("refused")]
pub struct Refused;

#[workflow]
impl Order {
    #[start]
    fn start(&self, _cmd: Place, ctx: &Context) -> Result<Then<Self>, Refused> {
        if ctx.entity_id().is_empty() {
            return Err(Refused);
        }
        Ok(Then::pause_for(std::time::Duration::from_secs(60), Self::cancel, ()))
    }

    #[signal]
    fn accept(&self, _cmd: Accept) -> Then<Self> {
        Then::to(Self::pay, 5)
    }

    #[step(timeout = "30s", max_retries = 2, backoff = "1s", failover = cancel)]
    async fn pay(&self, ctx: &StepContext, amount: u64) -> Result<Then<Self>, String> {
        if amount == 0 || ctx.attempt() > 9 {
            return Err("nothing to pay".into());
        }
        Ok(Then::end().with_state(Order { paid: true }))
    }

    #[step]
    async fn cancel(&self, _ctx: &StepContext) -> Then<Self> {
        Then::fail("cancelled")
    }
}

fn main() {
    let _: factum::__private::StepRef<Order, u64> = Order::pay;
    let _ = OrderSignal::from(Accept);
    assert_eq!(<Order as factum::Workflow>::STEPS, ["pay", "cancel"]);
}
