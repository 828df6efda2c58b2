//! The runners one subsystem of an app spawned: the signal that tells them
//! to stop, and their tasks, so a shutdown can wait until every one is gone.

use std::sync::Mutex;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Process, supervise};

/// Spawns a subsystem's supervisors and stops them: dropped with its owner
/// (the app), or [`stop`](Runners::stop)ped on purpose. Either way each
/// runner sees its `alive` channel close and exits after the batch in hand.
#[derive(Debug)]
pub(crate) struct Runners {
    alive: Mutex<Option<watch::Sender<()>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Default for Runners {
    fn default() -> Self {
        Runners {
            alive: Mutex::new(Some(watch::channel(()).0)),
            tasks: Mutex::new(Vec::new()),
        }
    }
}

impl Runners {
    /// A receiver that closes when the runners are told to stop (already
    /// closed once they were: a runner started after that exits at once).
    pub(crate) fn alive(&self) -> watch::Receiver<()> {
        match &*self.alive.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(alive) => alive.subscribe(),
            None => watch::channel(()).1,
        }
    }

    /// Spawns the supervisor of `process` and keeps its task.
    pub(crate) fn spawn<P: Process>(&self, process: P) {
        let task = tokio::spawn(supervise(process));
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Tells every runner to stop and waits until each has exited. A runner
    /// stops between batches: what it handled is committed with its
    /// checkpoint, and nothing it had not is lost (the next start reads on
    /// from the checkpoint).
    pub(crate) async fn stop(&self) {
        // Dropping the sender closes every runner's `alive` receiver.
        drop(self.alive.lock().unwrap_or_else(|e| e.into_inner()).take());
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            if let Err(error) = task.await {
                // `supervise` turns a runner's panic into its failure; a join
                // error means the task itself was cancelled or panicked outside it.
                tracing::error!(%error, "a runner's task ended abnormally during shutdown");
            }
        }
    }
}
