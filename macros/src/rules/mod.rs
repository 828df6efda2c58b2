//! The event-sourcing rules, checked on handler bodies and event types at compile time.
//!
//! The entity, view and workflow macros call [`check_body`] on every handler
//! body and `#[derive(Event)]` calls [`check_event`]; every violation is
//! reported, each spanned on the tokens that break the rule. One submodule per
//! rule holds its table and the one function that judges against it.
//!
//! # What the check sees
//!
//! The walk ([`walk`]) reads the body as written, before name resolution. It sees:
//! - paths in expression position, written short (`SystemTime::now()`), fully
//!   qualified (`::std::time::SystemTime::now()`), or used as a value
//!   (`let f = SystemTime::now;`, `.map(|_| Instant::now())`): a path matches a
//!   forbidden item when it ends with the item's segments (`Instant::now` also
//!   matches `tokio::time::Instant::now`) or, for modules, crates and RNG types
//!   (`std::fs`, `fastrand`, `OsRng`), when it contains them;
//! - method calls on a path receiver (`UNIX_EPOCH.elapsed()`);
//! - closures, nested blocks, `match` arms, `async` blocks, `let`
//!   initialisers, method receivers and arguments;
//! - macro calls: the macro's own path (`println!`, `dbg!`), and its arguments,
//!   parsed as comma-separated expressions where they parse (`format!`,
//!   `assert!`, `write!`) and otherwise scanned as tokens for forbidden path
//!   sequences (`vec![SystemTime::now(); 3]`);
//! - `unsafe` blocks (which is how a `static mut` is reached).
//!
//! String literals and comments never match.
//!
//! # What it cannot see
//!
//! The check has no name resolution and no types, so it misses:
//! - `use … as` aliases and glob or bare imports: after
//!   `use std::time::SystemTime as Clock;`, `Clock::now()` passes; after
//!   `use std::fs;`, `fs::read(…)` passes (only `std::fs::…` is recognised,
//!   so that a user's own module named `fs` is never flagged); after
//!   `use rand::random;`, a bare `random()` passes (a local named `random` is
//!   legitimate);
//! - calls hidden in helper functions, in nested items of the body (a nested
//!   `fn` is its own scope and is not walked), or in other crates;
//! - trait and inherent methods reached through a value (`clock.now()`,
//!   `rng.next_u64()` on an RNG obtained elsewhere), since which type a method
//!   belongs to is only known after type checking;
//! - macros from other crates that expand to forbidden calls (the check sees
//!   the macro's arguments, never its expansion).
//!
//! The test kit backs the check at test time: it replays the recorded events
//! onto a fresh state twice and fails when the states differ.
//!
//! # Crate-wide, through clippy
//!
//! Clippy resolves names, so it sees through aliases and helper functions.
//! Users who keep their entities, views and workflows in a crate of their own
//! can forbid the same items there with a `clippy.toml`:
//!
//! ```toml
//! disallowed-methods = [
//!     { path = "std::time::SystemTime::now", reason = "use ctx.now() in #[handle]; in #[apply] the time comes from the event" },
//!     { path = "std::time::Instant::now", reason = "use ctx.now() in #[handle]; in #[apply] the time comes from the event" },
//!     { path = "std::thread::sleep", reason = "state must not depend on timing; schedule a durable timer" },
//!     { path = "tokio::time::Instant::now", reason = "use ctx.now()" },
//!     { path = "tokio::time::sleep", reason = "state must not depend on timing; schedule a durable timer" },
//!     { path = "chrono::Utc::now", reason = "use ctx.now()" },
//!     { path = "chrono::Local::now", reason = "use ctx.now()" },
//!     { path = "time::OffsetDateTime::now_utc", reason = "use ctx.now()" },
//!     { path = "time::OffsetDateTime::now_local", reason = "use ctx.now()" },
//!     { path = "jiff::Timestamp::now", reason = "use ctx.now()" },
//!     { path = "jiff::Zoned::now", reason = "use ctx.now()" },
//!     { path = "factum::Timestamp::wall_clock", reason = "use ctx.now()" },
//!     { path = "rand::random", reason = "use ctx.random_u64()" },
//!     { path = "rand::thread_rng", reason = "use ctx.random_u64()" },
//!     { path = "rand::rng", reason = "use ctx.random_u64()" },
//!     { path = "getrandom::getrandom", reason = "use ctx.random_u64()" },
//!     { path = "getrandom::fill", reason = "use ctx.random_u64()" },
//!     { path = "uuid::Uuid::new_v4", reason = "use ctx.uuid()" },
//!     { path = "uuid::Uuid::now_v1", reason = "use ctx.uuid()" },
//!     { path = "uuid::Uuid::now_v6", reason = "use ctx.uuid()" },
//!     { path = "uuid::Uuid::now_v7", reason = "use ctx.uuid()" },
//!     { path = "uuid::Uuid::new_v7", reason = "use ctx.uuid()" },
//!     { path = "ulid::Ulid::new", reason = "use ctx.uuid()" },
//!     { path = "std::env::var", reason = "side effects belong in consumers and workflow steps" },
//!     { path = "std::process::exit", reason = "side effects belong in consumers and workflow steps" },
//!     { path = "std::thread::spawn", reason = "side effects belong in consumers and workflow steps" },
//!     { path = "tokio::spawn", reason = "side effects belong in consumers and workflow steps" },
//! ]
//! disallowed-types = [
//!     { path = "rand::rngs::OsRng", reason = "use ctx.random_u64()" },
//!     { path = "rand::rngs::ThreadRng", reason = "use ctx.random_u64()" },
//! ]
//! ```
//!
//! Clippy applies it to the whole crate, consumers included, where side
//! effects are the point: allow `clippy::disallowed_methods` on those items.

mod clock;
mod failure_names;
mod immutable_events;
mod random;
mod side_effects;
#[cfg(test)]
mod tests;
mod walk;

use crate::ctxt::Ctxt;

/// Where a body runs, which decides what it may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)] // ViewOn and WorkflowDecision are used by the view and workflow macros
pub(crate) enum Site {
    /// A `#[handle]` method: decides events; may use `ctx`.
    Handle,
    /// An `#[apply]` method: folds an event into state.
    Apply,
    /// A view's `#[on]` method: folds an event into a row.
    ViewOn,
    /// A workflow's transition decision.
    WorkflowDecision,
}

impl Site {
    /// The body's name in a message: "in a #[handle] body".
    fn body(self) -> &'static str {
        match self {
            Site::Handle => "a #[handle] body",
            Site::Apply => "an #[apply] body",
            Site::ViewOn => "a view's #[on] body",
            Site::WorkflowDecision => "a workflow decision",
        }
    }
}

/// One thing a body does that a rule may forbid, by the names it was written with.
#[derive(Debug)]
pub(crate) enum Seen<'a> {
    /// A path in expression position: a callee, a value, a method receiver.
    Path(&'a [String]),
    /// `receiver.method(…)` where the receiver is a path.
    Method { receiver: &'a [String], method: &'a str },
    /// A macro invocation, by the macro's path.
    Macro(&'a [String]),
    /// An `unsafe` block.
    Unsafe,
}

impl Seen<'_> {
    /// How the message names what was seen, without generics or a leading `::`.
    fn shown(&self) -> String {
        match self {
            Seen::Path(path) => path.join("::"),
            Seen::Method { receiver, method } => format!("{}.{method}()", receiver.join("::")),
            Seen::Macro(path) => format!("{}!", path.join("::")),
            Seen::Unsafe => "unsafe".to_owned(),
        }
    }
}

/// A forbidden item, matched against a path's segment names.
#[derive(Clone, Copy, Debug)]
enum Pattern {
    /// The path ends with these segments: `SystemTime::now` matches
    /// `std::time::SystemTime::now`, and a one-segment pattern matches a bare name.
    Tail(&'static [&'static str]),
    /// The path contains these segments in a row, anywhere: modules (`std::fs`
    /// matches `std::fs::read`), crates (`fastrand`) and types (`OsRng`).
    Contains(&'static [&'static str]),
}

impl Pattern {
    fn matches(self, path: &[String]) -> bool {
        match self {
            Pattern::Tail(tail) => path.len() >= tail.len() && path[path.len() - tail.len()..] == *tail,
            Pattern::Contains(run) => path.windows(run.len()).any(|window| *window == *run),
        }
    }
}

/// Reports every rule violation in `body` to `cx`, spanned on the offending tokens.
pub(crate) fn check_body(body: &syn::Block, site: Site, cx: &Ctxt) {
    walk::walk_block(body, site, cx);
}

/// Reports rule violations in an event type's declaration: a failure name
/// (unless `fact` states why the name records a real fact) and interior mutability.
pub(crate) fn check_event(input: &syn::DeriveInput, fact: Option<&syn::LitStr>, cx: &Ctxt) {
    failure_names::check(&input.ident, fact, cx);
    immutable_events::check(&input.data, cx);
}
