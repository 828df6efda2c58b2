//! The supervisor loop every log-following process runs: contend for the
//! lease, lead while holding it, follow the runner while another node has it,
//! and retry a failing runner every second without losing its failure streak.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use super::{Lease, Progress};
use crate::unwind::Guarded;

/// How long a node that is not the runner waits between attempts to become
/// it, and how long a failed runner waits before it tries again.
pub(crate) const LEASE_RETRY: Duration = Duration::from_secs(1);
/// How often a node that is not the runner refreshes what it follows.
pub(crate) const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Why leading stopped.
pub(crate) enum Led {
    /// The owner is gone: stop for good.
    Exit,
    /// The lease was lost: go back to contending for it.
    LeaseLost,
    /// Another binary must run this process (say a newer version): follow it.
    HoldOff,
}

/// One log-following process, as the supervisor drives it.
#[async_trait]
pub(crate) trait Process: Send + 'static {
    /// What the process's methods fail with.
    type Error: fmt::Display + Send;

    /// The process's name, for logs.
    fn name(&self) -> &'static str;

    /// The status shared with readers.
    fn progress(&self) -> &Progress;

    /// True once nobody can use the process any more (its app is gone).
    fn is_closed(&self) -> bool;

    /// A reason not to contend for the lease now (a newer binary runs this
    /// process), or `None` to contend.
    async fn hold_off(&mut self) -> Result<Option<String>, Self::Error>;

    /// Tries to become the one runner; `None` while another node is.
    async fn try_lease(&mut self) -> Result<Option<Box<dyn Lease>>, Self::Error>;

    /// Runs the process while `lease` holds.
    async fn lead(&mut self, lease: &dyn Lease) -> Result<Led, Self::Error>;

    /// Serves what another node's runner produces (refresh checkpoints, tables).
    async fn follow(&mut self) -> Result<(), Self::Error>;
}

/// Drives `process` until it is closed, then marks its progress stopped.
pub(crate) async fn supervise<P: Process>(mut process: P) {
    let name = process.name();
    // The hold-off reason last logged, so a rolling deploy logs once, not every second.
    let mut logged: Option<String> = None;
    loop {
        if process.is_closed() {
            break;
        }
        let hold_off = match process.hold_off().await {
            Ok(reason) => reason,
            Err(error) => {
                tracing::warn!(process = name, %error, "checking whether to hold off failed");
                None
            }
        };
        match hold_off {
            Some(reason) => {
                process.progress().set_role_known();
                if logged.as_ref() != Some(&reason) {
                    tracing::warn!(process = name, %reason, "holding off: following, not running");
                    process.progress().set_last_error(reason.clone());
                    logged = Some(reason);
                }
            }
            None => {
                logged = None;
                match process.try_lease().await {
                    Ok(Some(lease)) => {
                        process.progress().set_runner(true);
                        process.progress().set_role_known();
                        // A panic in the process's code (a user handler, a backend) is its
                        // failure, retried like any other; it never ends this task unseen.
                        let led = match Guarded::new(process.lead(&*lease)).await {
                            Ok(led) => led.map_err(|e| e.to_string()),
                            Err(message) => Err(format!("{name}: the runner panicked: {message}")),
                        };
                        process.progress().set_runner(false);
                        drop(lease);
                        match led {
                            Ok(Led::Exit) => break,
                            Ok(Led::LeaseLost) => {
                                tracing::warn!(
                                    process = name,
                                    "lost the runner lease; waiting to take it back"
                                );
                                continue;
                            }
                            Ok(Led::HoldOff) => continue,
                            Err(error) => {
                                tracing::error!(process = name, %error, "runner failed; retrying in 1 s");
                                process.progress().failed(&error);
                                tokio::time::sleep(LEASE_RETRY).await;
                                continue;
                            }
                        }
                    }
                    // Another node runs the process: follow it below.
                    Ok(None) => process.progress().set_role_known(),
                    Err(error) => {
                        tracing::warn!(process = name, %error, "taking the runner lease failed; retrying in 1 s");
                        tokio::time::sleep(LEASE_RETRY).await;
                        continue;
                    }
                }
            }
        }
        // Another node runs the process: serve what it produces, try again soon.
        let until = tokio::time::Instant::now() + LEASE_RETRY;
        while tokio::time::Instant::now() < until {
            match Guarded::new(process.follow()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(process = name, %error, "refreshing a followed process failed")
                }
                Err(message) => {
                    tracing::warn!(process = name, %message, "refreshing a followed process panicked")
                }
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }
    process.progress().stop();
}
