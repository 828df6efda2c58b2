//! `blame T ID FIELD`: why and when a field has its value.

use factum::audit::cell;

use super::compact;
use crate::output::{Progress, Table, short};
use crate::{CliError, Ctx};

/// `blame` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stream type (the entity name).
    pub stream_type: String,
    /// The stream id.
    pub stream_id: String,
    /// A field of the state: `balance`, `owner.name`, `lines[0].price` or `/lines/0/price`.
    pub field: String,
}

pub(crate) async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let progress = Progress::new("folding the stream");
    let blame = ctx
        .audit(&progress)
        .blame(&args.stream_type, &args.stream_id, &args.field)
        .await?;
    drop(progress);
    if ctx.out.is_json() {
        return ctx.out.json(&blame);
    }
    ctx.out.line(format!(
        "{}/{} {} = {}: changed by {} of {} event(s)",
        blame.stream_type,
        blame.stream_id,
        blame.path,
        cell(blame.current.as_ref()),
        blame.changes.len(),
        blame.events_folded
    ))?;
    let mut table = Table::new(&[
        ">version",
        "recorded at",
        "event",
        ">before",
        ">after",
        "command",
        "correlation",
        "payload",
    ]);
    for c in &blame.changes {
        table.row(vec![
            c.event.version.to_string(),
            c.event.recorded_at.to_string(),
            c.event.event_type.clone(),
            cell(c.before.as_ref()),
            cell(c.after.as_ref()),
            short(&c.event.command_id),
            short(&c.event.correlation_id),
            compact(&c.event.payload),
        ]);
    }
    table.print(&ctx.out, "  ")?;
    Ok(())
}
