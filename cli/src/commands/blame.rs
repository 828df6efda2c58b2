//! `blame T ID FIELD`: why and when a field has its value. Streamed: each
//! change is printed as the fold reaches it, so a field changed by every one
//! of a million events costs one state in memory.

use factum::audit::{BlameEntry, cell};

use super::compact;
use crate::output::{Output, Progress, short};
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

/// Prints the table's header (or the JSON document's start) before the first change.
struct Printer<'a> {
    out: &'a Output,
    args: &'a Args,
    started: bool,
    type_width: usize,
}

impl Printer<'_> {
    fn start(&mut self) -> Result<(), CliError> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        if self.out.is_json() {
            let head = serde_json::json!({
                "stream_type": self.args.stream_type,
                "stream_id": self.args.stream_id,
                "path": self.args.field,
            });
            // The document's fields, then `changes` as they come, then the summary's fields.
            let head = head.to_string();
            self.out
                .write(&format!("{},\"changes\":[", head.trim_end_matches('}')))?;
        } else {
            self.out.line(format!(
                "{}/{} {}: every event that changed it",
                self.args.stream_type, self.args.stream_id, self.args.field
            ))?;
            let w = self.type_width;
            self.out.line(format!(
                "  {:>7}  {:<27}  {:<w$}  {:>12}  {:>12}  {:<8}  {:<11}  payload",
                "version", "recorded at", "event", "before", "after", "command", "correlation"
            ))?;
        }
        Ok(())
    }

    fn change(&mut self, c: &BlameEntry, first: bool) -> Result<(), CliError> {
        self.start()?;
        if self.out.is_json() {
            if !first {
                self.out.write(",")?;
            }
            self.out.write("\n")?;
            return self.out.json_line(c);
        }
        let w = self.type_width;
        self.out.line(format!(
            "  {:>7}  {:<27}  {:<w$}  {:>12}  {:>12}  {:<8}  {:<11}  {}",
            c.event.version,
            c.event.recorded_at.to_string(),
            c.event.event_type,
            cell(c.before.as_ref()),
            cell(c.after.as_ref()),
            short(&c.event.command_id),
            short(&c.event.correlation_id),
            compact(&c.event.payload),
        ))?;
        Ok(())
    }
}

pub(crate) async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let progress = Progress::new("folding the stream");
    let type_width = factum::audit::event_decoders()
        .map(|d| d.name.len())
        .max()
        .unwrap_or(12)
        .max(5);
    let mut printer = Printer {
        out: &ctx.out,
        args: &args,
        started: false,
        type_width,
    };
    let mut first = true;
    let summary = ctx
        .audit(&progress)
        .blame_each::<CliError>(&args.stream_type, &args.stream_id, &args.field, |change| {
            printer.change(&change, first)?;
            first = false;
            Ok(())
        })
        .await?;
    drop(progress);
    printer.start()?;
    if ctx.out.is_json() {
        let tail = serde_json::json!({
            "current": summary.current,
            "events_folded": summary.events_folded,
        })
        .to_string();
        ctx.out.line(format!("],{}", tail.trim_start_matches('{')))?;
        return Ok(());
    }
    ctx.out.line(format!(
        "{} = {}: changed by {} of {} event(s)",
        summary.path,
        cell(summary.current.as_ref()),
        summary.changed,
        summary.events_folded
    ))?;
    Ok(())
}
