//! `trace ID`: everything one business transaction caused, as a tree.

use factum::Uuid;
use factum::audit::TraceNode;

use super::compact;
use crate::output::{Output, Progress, short};
use crate::{CliError, Ctx};

/// `trace` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The correlation id (as `history` shows it).
    pub correlation_id: Uuid,
}

pub(crate) async fn run(args: Args, ctx: &Ctx) -> Result<(), CliError> {
    let progress = Progress::new("scanning the log");
    let trace = ctx.audit(&progress).trace(args.correlation_id).await?;
    drop(progress);
    if ctx.out.is_json() {
        return ctx.out.json(&trace);
    }
    ctx.out.line(format!(
        "correlation {}: {} event(s) in {} stream(s) ({}), {} event(s) scanned",
        trace.correlation_id,
        trace.events,
        trace.streams.len(),
        trace.streams.join(", "),
        trace.scanned
    ))?;
    let count = trace.roots.len();
    for (i, node) in trace.roots.iter().enumerate() {
        print_node(&ctx.out, node, "", i + 1 == count)?;
    }
    Ok(())
}

fn print_node(out: &Output, node: &TraceNode, prefix: &str, last: bool) -> std::io::Result<()> {
    let (branch, more) = if last {
        ("└─ ", "   ")
    } else {
        ("├─ ", "│  ")
    };
    let cause = match (node.causation_id, node.cause_outside) {
        (Some(c), true) => format!(" caused by {} (outside this trace)", short(&c)),
        (Some(c), false) => format!(" caused by {}", short(&c)),
        (None, _) => String::new(),
    };
    out.line(format!(
        "{prefix}{branch}command {}{cause}",
        short(&node.command_id)
    ))?;
    let inner = format!("{prefix}{more}");
    let items = node.events.len() + node.children.len();
    for (i, e) in node.events.iter().enumerate() {
        let b = if i + 1 == items { "└─ " } else { "├─ " };
        out.line(format!(
            "{inner}{b}{:>6}  {}/{} v{}  {}  {}  {}",
            e.position,
            e.stream_type,
            e.stream_id,
            e.version,
            e.recorded_at,
            e.event_type,
            compact(&e.payload)
        ))?;
    }
    let children = node.children.len();
    for (i, child) in node.children.iter().enumerate() {
        print_node(out, child, &inner, i + 1 == children)?;
    }
    Ok(())
}
