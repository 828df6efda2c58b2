//! `diff T ID V1 V2`: how the state changed between two versions.

use factum::audit::cell;

use super::compact;
use crate::output::{Progress, Table};
use crate::{CliError, Ctx};

/// `diff` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stream type (the entity name).
    pub stream_type: String,
    /// The stream id.
    pub stream_id: String,
    /// The earlier version (0: before the first event).
    pub from: u64,
    /// The later version.
    pub to: u64,
}

pub(crate) async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let progress = Progress::new("folding the stream");
    let diff = ctx
        .audit(&progress)
        .diff(&args.stream_type, &args.stream_id, args.from, args.to)
        .await?;
    drop(progress);
    if ctx.out.is_json() {
        return ctx.out.json(&diff);
    }
    ctx.out.line(format!(
        "{}/{} from version {} to {}: {} field(s) changed by {} event(s)",
        args.stream_type,
        args.stream_id,
        diff.from.version,
        diff.to.version,
        diff.changes.len(),
        diff.events.len()
    ))?;
    let mut fields = Table::new(&[
        "field",
        &format!("v{}", diff.from.version),
        &format!("v{}", diff.to.version),
    ]);
    for c in &diff.changes {
        fields.row(vec![
            c.path.clone(),
            cell(c.before.as_ref()),
            cell(c.after.as_ref()),
        ]);
    }
    if !fields.is_empty() {
        fields.print(&ctx.out, "  ")?;
    }
    ctx.out.line("events:")?;
    let mut events = Table::new(&[">version", "recorded at", "event", "payload"]);
    for e in &diff.events {
        events.row(vec![
            e.version.to_string(),
            e.recorded_at.to_string(),
            e.event_type.clone(),
            compact(&e.payload),
        ]);
    }
    events.print(&ctx.out, "  ")?;
    Ok(())
}
