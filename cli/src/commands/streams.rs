//! `streams [--type T]`: what the log holds, one row per stream.

use crate::output::{Progress, Table};
use crate::{CliError, Ctx};

/// `streams` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only streams of this type.
    #[arg(long = "type", value_name = "T")]
    pub stream_type: Option<String>,
}

pub(crate) async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let progress = Progress::new("scanning the log");
    let streams = ctx.audit(&progress).streams(args.stream_type.as_deref()).await?;
    drop(progress);
    if ctx.out.is_json() {
        return ctx.out.json(&streams);
    }
    let mut table = Table::new(&[
        "type",
        "id",
        ">version",
        ">events",
        "first recorded",
        "last recorded",
    ]);
    let mut types: Vec<(&str, u64, u64)> = Vec::new();
    for s in &streams {
        match types.last_mut() {
            Some((t, n, e)) if *t == s.stream_type => {
                *n += 1;
                *e += s.events;
            }
            _ => types.push((&s.stream_type, 1, s.events)),
        }
        table.row(vec![
            s.stream_type.clone(),
            s.stream_id.clone(),
            s.version.to_string(),
            s.events.to_string(),
            s.first_recorded_at.to_string(),
            s.last_recorded_at.to_string(),
        ]);
    }
    let mut summary = Table::new(&["stream type", ">streams", ">events"]);
    for (t, n, e) in types {
        summary.row(vec![t.to_owned(), n.to_string(), e.to_string()]);
    }
    summary.print(&ctx.out, "")?;
    ctx.out.line("")?;
    table.print(&ctx.out, "")?;
    Ok(())
}
