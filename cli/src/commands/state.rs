//! `state T ID [--at-version V | --at-time TS]`: time travel.

use factum::Timestamp;
use factum::audit::At;

use super::{describe, print_state};
use crate::output::Progress;
use crate::{CliError, Ctx};

/// `state` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stream type (the entity name).
    pub stream_type: String,
    /// The stream id.
    pub stream_id: String,
    /// The state after this version.
    #[arg(long, value_name = "V", conflicts_with = "at_time")]
    pub at_version: Option<u64>,
    /// The state after the last event recorded at or before this time (`2030-01-01T12:00:00Z`).
    #[arg(long, value_name = "TS", value_parser = parse_time)]
    pub at_time: Option<Timestamp>,
    /// Fold every event from the first, ignoring stored snapshots.
    #[arg(long)]
    pub replay: bool,
}

pub(crate) fn parse_time(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse(text).map_err(|e| e.to_string())
}

pub(crate) async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let at = match (args.at_version, args.at_time) {
        (Some(v), _) => At::Version(v),
        (None, Some(t)) => At::Time(t),
        (None, None) => At::Latest,
    };
    let progress = Progress::new("folding the stream");
    let state = ctx
        .audit(&progress)
        .use_snapshots(!args.replay)
        .state(&args.stream_type, &args.stream_id, at)
        .await?;
    drop(progress);
    if ctx.out.is_json() {
        return ctx.out.json(&state);
    }
    ctx.out.line(describe(&state))?;
    print_state(&ctx.out, &state.state, "  ")?;
    Ok(())
}
