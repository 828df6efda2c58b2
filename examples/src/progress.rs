//! A progress bar (indicatif) for a view catching up with the log, for the
//! examples and tools; the library itself never draws one.

use std::time::Duration;

use factum::view::{View, ViewError, ViewReader};
use indicatif::{ProgressBar, ProgressStyle};

/// Below this many events to fold, no bar is drawn.
const WORTH_A_BAR: u64 = 10_000;

/// Waits until the view has folded up to `head`, drawing a bar when that is far.
pub async fn catch_up_with_progress<V: View>(view: &ViewReader<V>, head: u64) -> Result<(), ViewError> {
    let behind = head.saturating_sub(view.checkpoint());
    if behind < WORTH_A_BAR {
        return view.wait_for(head).await;
    }
    let bar = ProgressBar::new(head);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("catching up view {}", V::NAME));
    let wait = view.wait_for(head);
    tokio::pin!(wait);
    loop {
        tokio::select! {
            done = &mut wait => {
                bar.set_position(view.checkpoint().min(head));
                bar.finish();
                return done;
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => bar.set_position(view.checkpoint().min(head)),
        }
    }
}
