//! Tables built beside the live one from outside a running app: the audit
//! tools' "regenerate state with new logic, look, then swap". The build
//! folds with the runner's own step (one fold, one commit protocol) under
//! the view's lease, and leaves the table `Building`; the swap catches it up
//! to the head and activates it. A building table of its version is also
//! what the view's own runner resumes and swaps in when it next leads.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::backend::{TableId, TableInfo, TableState, ViewStore};
use super::reader::Shared;
use super::runner::{Run, step};
use super::{View, ViewError};
use crate::process::Tail;
use crate::store::EventStore;

/// What a side build needs: the log, the view tables, a batch size, and
/// where to report `(checkpoint, head)`.
pub(crate) struct SideBuild {
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) views: Arc<dyn ViewStore>,
    pub(crate) batch: usize,
    pub(crate) progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
    /// Finish the newest building table and activate it, instead of starting a new one.
    pub(crate) swap: bool,
}

/// The future of a side build: the table's final standing.
pub(crate) type SideFuture = Pin<Box<dyn Future<Output = Result<TableInfo, ViewError>> + Send>>;

pub(crate) fn side_erased<V: View>(args: SideBuild) -> SideFuture {
    Box::pin(side::<V>(args))
}

fn storage<V: View>(source: super::ViewStoreError) -> ViewError {
    ViewError::Storage {
        view: V::NAME,
        source,
    }
}

async fn side<V: View>(args: SideBuild) -> Result<TableInfo, ViewError> {
    super::backend::check_view_name(V::NAME).map_err(storage::<V>)?;
    let Some(lease) = args.views.try_lease(V::NAME).await.map_err(storage::<V>)? else {
        return Err(ViewError::Leased { view: V::NAME });
    };
    let infos = args.views.tables(V::NAME).await.map_err(storage::<V>)?;
    let building = infos
        .iter()
        .filter(|t| t.state == TableState::Building && t.id.version == V::VERSION)
        .max_by_key(|t| t.id.build);
    let (id, checkpoint) = match (args.swap, building) {
        (true, Some(b)) => (b.id.clone(), b.position),
        (true, None) => {
            return Err(ViewError::NoSideTable {
                view: V::NAME,
                version: V::VERSION,
            });
        }
        (false, _) => {
            let build = infos
                .iter()
                .filter(|t| t.id.version == V::VERSION)
                .map(|t| t.id.build + 1)
                .max()
                .unwrap_or(0);
            let id = TableId {
                view: V::NAME.to_owned(),
                version: V::VERSION,
                build,
            };
            (id, 0)
        }
    };
    let table = args
        .views
        .open(&id, V::INDEXES, TableState::Building)
        .await
        .map_err(storage::<V>)?;
    let mut run = Run { table, checkpoint };
    let mut tail = Tail::new(args.store.clone(), args.batch.max(1));
    let head = args.store.head().await.map_err(|source| ViewError::Log {
        view: V::NAME,
        position: 0,
        source,
    })?;
    loop {
        if lease.is_lost() {
            return Err(ViewError::Leased { view: V::NAME });
        }
        let read = step::<V>(&mut tail, &mut run, None::<&Shared<V>>).await?;
        if let Some(progress) = &args.progress {
            progress(run.checkpoint.min(head), head);
        }
        if read == 0 {
            break;
        }
    }
    let state = if args.swap {
        args.views.activate(&id).await.map_err(storage::<V>)?;
        TableState::Active
    } else {
        TableState::Building
    };
    Ok(TableInfo {
        id,
        state,
        position: run.checkpoint,
    })
}
