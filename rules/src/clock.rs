//! Rule: never read the wall clock for state.
//!
//! Forbids the clock reads and sleeps of std, tokio, chrono, time, jiff and
//! factum in every handler body; the time comes from `ctx.now()` or the event.

use super::Pattern::{self, Tail};
use super::{At, Seen, Site};

/// Clock reads, by the segments a path ends with. `Instant::now` also covers
/// `tokio::time::Instant::now`; `SystemTime::elapsed` is the clock read
/// `UNIX_EPOCH.elapsed()` makes, written as a path.
const READS: &[Pattern] = &[
    Tail(&["SystemTime", "now"]),
    Tail(&["Instant", "now"]),
    Tail(&["SystemTime", "elapsed"]),
    Tail(&["Instant", "elapsed"]),
    Tail(&["Utc", "now"]),
    Tail(&["Local", "now"]),
    Tail(&["OffsetDateTime", "now_utc"]),
    Tail(&["OffsetDateTime", "now_local"]),
    Tail(&["Timestamp", "now"]),
    Tail(&["Timestamp", "wall_clock"]),
    Tail(&["Zoned", "now"]),
];

/// Waits on the clock: what follows depends on how long the wait took.
const WAITS: &[Pattern] = &[
    Tail(&["thread", "sleep"]),
    Tail(&["time", "sleep"]),
    Tail(&["time", "sleep_until"]),
];

/// Methods that read the clock when called on a path ending in this constant.
const EPOCH_METHODS: &[(&str, &str)] = &[("UNIX_EPOCH", "elapsed")];

/// Never read the wall clock for state: events are replayed long after they
/// were decided, and state rebuilt from them must come out the same every
/// time. A handler reads the time from `ctx.now()`, which the runtime fixes
/// once per command (and tests pin); an apply or view takes it from the event.
pub(crate) fn judge(seen: &Seen, at: &At<'_>) -> Option<String> {
    let site = at.site;
    let (does, alternative) = match seen {
        Seen::Path(path) if READS.iter().any(|p| p.matches(path)) => {
            ("reads the wall clock", read_instead(site))
        }
        Seen::Path(path) if WAITS.iter().any(|p| p.matches(path)) => (
            "waits on the wall clock",
            "To act later, send a command when the time comes; its handler reads the time from `ctx.now()`.",
        ),
        Seen::Method { receiver, method }
            if EPOCH_METHODS
                .iter()
                .any(|(constant, m)| receiver.last().is_some_and(|r| r == constant) && method == m) =>
        {
            ("reads the wall clock", read_instead(site))
        }
        _ => return None,
    };
    Some(format!(
        "{} {does} in {}; event-sourced state must not depend on when it is replayed \
         (rule: never read the wall clock). {alternative}",
        at.shown(seen),
        at.body(seen),
    ))
}

fn read_instead(site: Site) -> &'static str {
    match site {
        Site::Handle => "Use `ctx.now()` instead.",
        Site::Apply => "The time must come from the event: record `ctx.now()` in it in #[handle].",
        Site::ViewOn => "The time must come from the event, or `meta.recorded_at` in a view.",
        Site::WorkflowDecision => "Take `ctx: &Context` after the command and use `ctx.now()`.",
    }
}
