use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Opened {
    pub owner: String,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Closed {}

#[derive(Default, Clone, Debug, Serialize, Deserialize)]
pub struct ByOwner {
    owner: String,
    accounts: u32,
}

#[view(name = "by_owner", version = 3, index = [owner])]
impl ByOwner {
    #[on(key = e.owner.clone())]
    fn opened(&mut self, e: &Opened, meta: &EventMeta) {
        self.owner = e.owner.clone();
        self.accounts += 1;
        let _ = meta.recorded_at;
    }

    #[on(key = format!("closed-{}", meta.stream_id))]
    fn closed(&mut self, _e: &Closed, meta: &EventMeta) -> ViewOp {
        let _ = meta;
        ViewOp::Delete
    }
}

async fn query(app: &App) -> Result<(), factum::ViewError> {
    let view = app.view::<ByOwner>();
    let _one: Option<ByOwner> = view.get("ada").await?;
    let _all: Vec<(String, ByOwner)> = view.find_by_owner("ada").await?;
    let _page = view.list(None, 10).await?;
    Ok(())
}

fn main() {
    let _ = query;
}
