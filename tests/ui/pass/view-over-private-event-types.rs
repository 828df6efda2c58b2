// A view over events private to a binary builds without a warning: the
// generated `pub` helpers must not trip `private_interfaces` or `unreachable_pub`.
#![deny(warnings, unreachable_pub)]

use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Opened {
    owner: String,
}

#[derive(Default, Clone, Debug, Serialize, Deserialize)]
pub struct ByOwner {
    owner: String,
}

#[view(name = "by_owner", index = [owner])]
impl ByOwner {
    #[on(key = e.owner.clone())]
    fn opened(&mut self, e: &Opened) {
        self.owner = e.owner.clone();
    }
}

async fn query(app: &App) -> Result<Vec<(String, ByOwner)>, factum::ViewError> {
    app.view::<ByOwner>().find_by_owner("ada").await
}

fn main() {
    let _ = query;
    let _ = Opened { owner: String::new() }.owner;
}
