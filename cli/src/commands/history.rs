//! `history T ID [--from V] [--to V]`: every event of a stream, streamed
//! page by page (one JSON object per line with `--json`).

use factum::audit::HistoryEntry;

use super::compact;
use crate::output::{Progress, short};
use crate::{CliError, Ctx};

/// `history` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stream type (the entity name, e.g. `account`).
    pub stream_type: String,
    /// The stream id.
    pub stream_id: String,
    /// The first version to show.
    #[arg(long, value_name = "V")]
    pub from: Option<u64>,
    /// The last version to show.
    #[arg(long, value_name = "V")]
    pub to: Option<u64>,
}

/// The schema version column: `v1`, or `v1→v2` when upcast on load.
fn schema(e: &HistoryEntry) -> String {
    match e.current_version {
        Some(v) if v != e.stored_version => format!("v{}→v{v}", e.stored_version),
        _ => format!("v{}", e.stored_version),
    }
}

pub(crate) async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let progress = Progress::new("reading the stream");
    let audit = ctx.audit(&progress);
    let mut history = audit
        .history(&args.stream_type, &args.stream_id, args.from, args.to)
        .await?;
    let total = history.stream_version();
    // Streamed: the widths are fixed up front (no second pass over the events).
    let type_width = factum::audit::event_decoders()
        .map(|d| d.name.len())
        .max()
        .unwrap_or(12)
        .max(5);
    if !ctx.out.is_json() {
        ctx.out.line(format!(
            "{:>7}  {:>8}  {:<type_width$}  {:<6}  {:<27}  {:<8}  {:<8}  {:<36}  payload",
            "version", "position", "event", "schema", "recorded at", "command", "cause", "correlation"
        ))?;
    }
    while let Some(e) = history.next().await? {
        progress.set(e.version, total);
        if ctx.out.is_json() {
            ctx.out.json_line(&e)?;
            continue;
        }
        let cause = e.causation_id.as_ref().map_or_else(|| "-".to_owned(), short);
        let mut payload = compact(&e.payload);
        if let Some(error) = &e.error {
            payload.push_str(&format!("  ({error})"));
        }
        ctx.out.line(format!(
            "{:>7}  {:>8}  {:<type_width$}  {:<6}  {:<27}  {:<8}  {:<8}  {:<36}  {payload}",
            e.version,
            e.position,
            e.event_type,
            schema(&e),
            e.recorded_at.to_string(),
            short(&e.command_id),
            cause,
            e.correlation_id.to_string(),
        ))?;
    }
    Ok(())
}
