//! Rule: never use random numbers to produce state.
//!
//! Forbids the entropy sources of rand, getrandom, fastrand, uuid and ulid in
//! every handler body; randomness comes from `ctx` or from the event.

use super::Pattern::{self, Contains, Tail};
use super::{At, Seen, Site};

/// Entropy sources. RNG types and whole crates match anywhere in a path
/// (`OsRng.next_u64()`, `rand::rngs::OsRng::default()`, `fastrand::u64(..)`).
const SOURCES: &[Pattern] = &[
    Tail(&["rand", "random"]),
    Tail(&["thread_rng"]),
    Tail(&["rand", "rng"]),
    Contains(&["OsRng"]),
    Contains(&["ThreadRng"]),
    Tail(&["from_entropy"]),
    Tail(&["from_os_rng"]),
    Contains(&["getrandom"]),
    Contains(&["fastrand"]),
    Tail(&["Uuid", "new_v4"]),
    Tail(&["Uuid", "now_v1"]),
    Tail(&["Uuid", "now_v6"]),
    Tail(&["Uuid", "now_v7"]),
    Tail(&["Uuid", "new_v7"]),
    Tail(&["Ulid", "new"]),
    Tail(&["Ulid", "generate"]),
];

/// Never use random numbers to produce state: replaying the same events must
/// rebuild the same state, and a fresh random value differs on every run. A
/// handler draws from `ctx.random_u64()` / `ctx.uuid()`, seeded from the
/// command id, and records what it drew in the event; an apply or view reads
/// it back from the event.
pub(crate) fn judge(seen: &Seen, at: &At<'_>) -> Option<String> {
    let site = at.site;
    let Seen::Path(path) = seen else { return None };
    if !SOURCES.iter().any(|p| p.matches(path)) {
        return None;
    }
    let alternative = match site {
        Site::Handle => {
            "Use `ctx.random_u64()` or `ctx.uuid()` instead: they are seeded from the command id."
        }
        Site::Apply | Site::ViewOn => {
            "The value must come from the event: draw it in #[handle] with `ctx.random_u64()` or `ctx.uuid()` and record it."
        }
        Site::WorkflowDecision => {
            "Take `ctx: &Context` after the command and use `ctx.random_u64()` or `ctx.uuid()`."
        }
    };
    Some(format!(
        "{} draws random numbers in {}; replaying the same events must rebuild the same state \
         (rule: never use random numbers to produce state). {alternative}",
        at.shown(seen),
        at.body(seen),
    ))
}
