use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Opened {
    pub owner: String,
}

#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ByOwner {
    owner: String,
}

#[view(name = "by_owner", index = [owner])]
impl ByOwner {
    #[on]
    fn opened(&mut self, e: Opened) {
        self.owner = e.owner;
    }
}

// Only the signature above is wrong: the uses below must not fail with it.
async fn query(app: &App) -> Result<(), factum::ViewError> {
    let view = app.view::<ByOwner>();
    let _one: Option<ByOwner> = view.get("ada").await?;
    let _all: Vec<(String, ByOwner)> = view.find_by_owner("ada").await?;
    factum::testkit::view::<ByOwner>().then_no_row("ada");
    Ok(())
}

fn main() {
    let _ = query;
}
