//! The consumers' side of the audit: where each consumer (and producer)
//! stands, its dead letters, and the operator's redrive and discard. These
//! open the consumer tables beside the events (writable: a redrive or a
//! discard is a write); a running app's runner takes a change up within
//! half a second.

use std::collections::BTreeMap;

use factum::Timestamp;
use factum::consumer::{DeadLetter, LetterState, operate};
use serde_json::{Value, json};

use crate::output::Table;
use crate::{CliError, Ctx};

/// `dead-letters` arguments.
#[derive(Debug, clap::Args)]
pub struct LettersArgs {
    /// The consumer (a topic consumer is `topic.<name>`).
    pub consumer: String,
    /// Only letters in this state: parked, held, redrive, resolved, discarded, skipped.
    #[arg(long)]
    pub state: Option<String>,
}

/// `redrive` arguments.
#[derive(Debug, clap::Args)]
pub struct RedriveArgs {
    /// The consumer.
    pub consumer: String,
    /// The parked letter's position.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub position: Option<u64>,
    /// Every parked letter of the consumer.
    #[arg(long)]
    pub all: bool,
}

/// `discard` arguments.
#[derive(Debug, clap::Args)]
pub struct DiscardArgs {
    /// The consumer.
    pub consumer: String,
    /// The parked or held letter's position.
    pub position: u64,
    /// Why it is given up (kept with the letter).
    #[arg(long)]
    pub reason: String,
}

fn consumer_error(e: factum::ConsumerError) -> CliError {
    CliError::Usage(e.to_string())
}

fn letter_json(l: &DeadLetter) -> Value {
    json!({
        "consumer": l.consumer,
        "position": l.position,
        "stream_type": l.stream_type,
        "stream_id": l.stream_id,
        "version": l.version,
        "event_type": l.event_type,
        "event_id": l.event_id.to_string(),
        "state": l.state.as_str(),
        "attempts": l.attempts,
        "error": l.error,
        "reason": l.reason,
        "recorded_at": l.recorded_at.to_string(),
        "updated_at": l.updated_at.to_string(),
    })
}

/// `consumers`: every consumer and producer checkpoint, its lag, its letters by state.
pub(crate) async fn list(ctx: &Ctx) -> Result<(), CliError> {
    let store = ctx.consumers().await?;
    let head = ctx.store().head().await?;
    let mut rows = Vec::new();
    for (name, checkpoint) in store
        .checkpoints()
        .await
        .map_err(|e| CliError::Usage(e.to_string()))?
    {
        let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
        for l in operate::dead_letters(&*store, &name, None)
            .await
            .map_err(consumer_error)?
        {
            *counts.entry(l.state.as_str()).or_default() += 1;
        }
        rows.push((name, checkpoint, counts));
    }
    if ctx.out.is_json() {
        let out: Vec<Value> = rows
            .iter()
            .map(|(name, checkpoint, counts)| {
                json!({"consumer": name, "checkpoint": checkpoint, "head": head,
                       "lag_events": head.saturating_sub(*checkpoint), "letters": counts})
            })
            .collect();
        return ctx.out.json(&out);
    }
    let mut table = Table::new(&["consumer", ">checkpoint", ">lag", ">parked", ">held", "letters"]);
    for (name, checkpoint, counts) in &rows {
        let all = counts
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        table.row(vec![
            name.clone(),
            checkpoint.to_string(),
            head.saturating_sub(*checkpoint).to_string(),
            counts.get("parked").copied().unwrap_or(0).to_string(),
            counts.get("held").copied().unwrap_or(0).to_string(),
            if all.is_empty() { "none".to_owned() } else { all },
        ]);
    }
    ctx.out.line(format!("log head: position {head}"))?;
    table.print(&ctx.out, "")?;
    Ok(())
}

/// `dead-letters CONSUMER [--state S]`.
pub(crate) async fn letters(args: LettersArgs, ctx: &Ctx) -> Result<(), CliError> {
    let state = match &args.state {
        None => None,
        Some(s) => Some(LetterState::parse(s).ok_or_else(|| {
            CliError::Usage(format!(
                "--state {s:?}: expected one of parked, held, redrive, resolved, discarded, skipped"
            ))
        })?),
    };
    let store = ctx.consumers().await?;
    let states = state.map(|s| [s]);
    let letters = operate::dead_letters(&*store, &args.consumer, states.as_ref().map(|s| s.as_slice()))
        .await
        .map_err(consumer_error)?;
    if ctx.out.is_json() {
        return ctx.out.json(&letters.iter().map(letter_json).collect::<Vec<_>>());
    }
    let mut table = Table::new(&[
        ">position",
        "stream",
        ">version",
        "event",
        "state",
        ">attempts",
        "updated",
        "error / reason",
    ]);
    for l in &letters {
        let why = match &l.reason {
            Some(reason) => format!("{} (discarded: {reason})", l.error),
            None => l.error.clone(),
        };
        table.row(vec![
            l.position.to_string(),
            format!("{}/{}", l.stream_type, l.stream_id),
            l.version.to_string(),
            l.event_type.clone(),
            l.state.as_str().to_owned(),
            l.attempts.to_string(),
            l.updated_at.to_string(),
            why,
        ]);
    }
    ctx.out.line(format!(
        "{} dead letters of consumer {}",
        letters.len(),
        args.consumer
    ))?;
    table.print(&ctx.out, "")?;
    Ok(())
}

/// `redrive CONSUMER POSITION | --all`.
pub(crate) async fn redrive(args: RedriveArgs, ctx: &Ctx) -> Result<(), CliError> {
    let store = ctx.consumers().await?;
    let now = Timestamp::wall_clock();
    let count = match args.position {
        Some(position) => {
            operate::redrive(&*store, &args.consumer, position, now)
                .await
                .map_err(consumer_error)?;
            1
        }
        None => operate::redrive_all(&*store, &args.consumer, now)
            .await
            .map_err(consumer_error)?,
    };
    if ctx.out.is_json() {
        return ctx
            .out
            .json(&json!({"consumer": args.consumer, "redrive": count}));
    }
    ctx.out.line(format!(
        "asked consumer {} to run {count} parked event(s) again; its runner takes them up within half a second",
        args.consumer
    ))?;
    Ok(())
}

/// `discard CONSUMER POSITION --reason R`.
pub(crate) async fn discard(args: DiscardArgs, ctx: &Ctx) -> Result<(), CliError> {
    let store = ctx.consumers().await?;
    operate::discard(
        &*store,
        &args.consumer,
        args.position,
        &args.reason,
        Timestamp::wall_clock(),
    )
    .await
    .map_err(consumer_error)?;
    if ctx.out.is_json() {
        return ctx
            .out
            .json(&json!({"consumer": args.consumer, "discarded": args.position, "reason": args.reason}));
    }
    ctx.out.line(format!(
        "discarded the dead letter of consumer {} at position {}: {}",
        args.consumer, args.position, args.reason
    ))?;
    Ok(())
}
