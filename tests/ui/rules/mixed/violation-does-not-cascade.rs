//! One rule violation is one error: the entity is still fully generated, so
//! code that sends it commands does not fail a second time.
use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug)]
pub struct Stamp;

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Stamped {
    pub at: std::time::SystemTime,
}

#[derive(Default, Clone, Debug)]
pub struct Clock {
    last: Option<std::time::SystemTime>,
}

#[entity]
impl Clock {
    #[handle]
    fn stamp(&self, _cmd: Stamp) -> Stamped {
        Stamped { at: std::time::SystemTime::now() }
    }

    #[apply]
    fn stamped(&mut self, e: &Stamped) {
        self.last = Some(e.at);
    }
}

async fn use_it(app: App) {
    let clock = app.entity::<Clock>("c");
    let _ = clock.send(Stamp).await;
    let _: Option<ClockEvent> = None;
    let _ = <Clock as Entity>::NAME;
}

fn main() {
    let _ = use_it;
}
