//! `what-if T ID [--at-version V] --command NAME=JSON …`: hypothetical
//! commands through the entity's real handlers, on a fork in memory.

use factum::Timestamp;

use super::{compact, describe, print_state};
use crate::output::{Progress, Table};
use crate::{CliError, Ctx};

/// `what-if` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stream type (the entity name).
    pub stream_type: String,
    /// The stream id.
    pub stream_id: String,
    /// Fork at this version (default: the latest).
    #[arg(long, value_name = "V")]
    pub at_version: Option<u64>,
    /// A command: its type's name and its JSON, `Withdraw={"amount":100000}`
    /// (`Close` alone means `Close=null`, for a unit struct). Repeat for several, run in order.
    #[arg(long = "command", value_name = "NAME=JSON", required = true, value_parser = parse_command)]
    pub commands: Vec<(String, String)>,
    /// The time the commands are decided at (default: now).
    #[arg(long, value_name = "TS", value_parser = super::state::parse_time)]
    pub now: Option<Timestamp>,
}

fn parse_command(text: &str) -> Result<(String, String), String> {
    let (name, json) = match text.split_once('=') {
        Some((name, json)) => (name.trim(), json.trim()),
        None => (text.trim(), "null"),
    };
    if name.is_empty() {
        return Err("expected NAME=JSON, e.g. Withdraw={\"amount\":100}".into());
    }
    Ok((name.to_owned(), json.to_owned()))
}

pub(crate) async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let progress = Progress::new("folding the stream");
    let now = args.now.unwrap_or_else(Timestamp::wall_clock);
    let what_if = ctx
        .audit(&progress)
        .what_if(
            &args.stream_type,
            &args.stream_id,
            args.at_version,
            &args.commands,
            now,
        )
        .await?;
    drop(progress);
    if ctx.out.is_json() {
        return ctx.out.json(&what_if);
    }
    ctx.out.line(format!(
        "what-if on {}, decided at {now}; nothing is written",
        describe(&what_if.base)
    ))?;
    let mut table = Table::new(&[">#", "command", ">at version", "outcome", "events / rejection"]);
    for (i, step) in what_if.steps.iter().enumerate() {
        let detail = match &step.rejection {
            Some(why) => why.clone(),
            None if step.events.is_empty() => "(no events)".to_owned(),
            None => step
                .events
                .iter()
                .map(|e| format!("{} {}", e.event_type, compact(&e.payload)))
                .collect::<Vec<_>>()
                .join("; "),
        };
        table.row(vec![
            (i + 1).to_string(),
            format!("{} {}", step.command, compact(&step.input)),
            step.at_version.to_string(),
            step.outcome.to_owned(),
            detail,
        ]);
    }
    table.print(&ctx.out, "  ")?;
    ctx.out
        .line(format!("state after the what-if (version {}):", what_if.version))?;
    print_state(&ctx.out, &what_if.state, "  ")?;
    Ok(())
}
