//! The event-sourcing rules, and how factum enforces them.
//!
//! This module is the reference for what `#[entity]`, `#[derive(Event)]` and
//! `#[view]` reject at compile time and what they cannot see, for the
//! crate-wide check that sees further (`check_crate`, feature
//! `check-crate`), and for the event lock that keeps rule 1 across releases.
//! The tables behind every check are one copy, in the `factum-rules` crate. Every violation is a compile error spanned on the offending
//! tokens, naming the rule and the allowed alternative:
//!
//! ```text
//! error: `SystemTime::now` reads the wall clock in a #[handle] body; ... Use `ctx.now()` instead.
//! ```
//!
//! | rule | where it is checked |
//! |---|---|
//! | never modify an event | `#[derive(Event)]`: no interior mutability in fields; handlers get `&E`; across releases, the event lock ([`check_event_lock`](crate::testkit::check_event_lock)) |
//! | never read the wall clock for state | `#[handle]`, `#[apply]`, view `#[on]` bodies; use `ctx.now()` |
//! | never use random numbers to produce state | same bodies; use `ctx.random_u64()`, `ctx.uuid()` |
//! | do not model "failed to create" as events | `#[derive(Event)]` names; return `Err` from `#[handle]` |
//! | never produce side effects when processing events | `#[apply]` and view bodies (and process/spawn/env everywhere) |
//!
//! # What the check sees
//!
//! The check reads the body as written, before name resolution. It sees:
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
//! - `unsafe` blocks (which is how a `static mut` is reached);
//! - `use` items inside the body, for the block they are written in:
//!   after `use std::time::SystemTime as Clock;`, `Clock::now()` reads as
//!   `std::time::SystemTime::now()`; after `use std::fs;`, `fs::write(…)` as
//!   `std::fs::write(…)`; after `use rand::random;`, a bare `random()` as
//!   `rand::random()`. An item the body declares (`mod fs`, `fn random`), or a
//!   `let` of the same name for a one-segment path, hides an outer `use`;
//! - the other methods of the same impl block that a handler reaches:
//!   `self.stamp()`, `Self::roll()`, `<Self>::roll()`, `Account::roll()` inside
//!   `impl Account`, and what those call in turn. Each runs as part of the
//!   handler, so it is held to the handler's rules (a helper that reads a file
//!   is fine from a `#[handle]`, not from an `#[apply]`), and a violation is
//!   reported on the handler's call with the chain that reaches it:
//!
//! ```text
//! error: `SystemTime::now` reads the wall clock in a helper of a #[handle] body
//!        (`deposit → self.stamp() → SystemTime::now()`); ... Use `ctx.now()` instead.
//! ```
//!
//! A method that no handler reaches is not checked: nothing says where it runs.
//! A helper that takes `ctx` and reads `ctx.now()` is the way to share code
//! that needs the time.
//!
//! String literals and comments never match, and neither do the user's own
//! items named like forbidden ones (a `mod fs` of the crate, a `fn random`):
//! without a `use` in the body that says otherwise, `fs::write` and `random()`
//! are taken as the user's.
//!
//! # What it cannot see
//!
//! The macro sees only its own input, the impl block, and has no types, so it
//! misses:
//! - `use` items at module level, and globs (`use std::fs::*;` then `read(…)`):
//!   after a module-level `use std::time::SystemTime as Clock;`, `Clock::now()`
//!   in a handler passes; so does `fs::read(…)` after a module-level `use std::fs;`
//!   (only `std::fs::…` is recognised, so that a user's own module named `fs`
//!   is never flagged);
//! - free functions (`fn seconds()` beside the impl, in another module or
//!   file), methods in another impl block of the same type, nested `fn` items
//!   in a body (their own scope, not walked), and other crates' code;
//! - trait and inherent methods reached through a value (`clock.now()`,
//!   `rng.next_u64()` on an RNG obtained elsewhere, `self.field.helper()`),
//!   calls through trait objects and generic bounds, since which type a method
//!   belongs to is only known after type checking;
//! - macros from other crates that expand to forbidden calls (the check sees
//!   the macro's arguments, never its expansion).
//!
//! The test kit backs the check at test time: it replays the recorded events
//! onto a fresh state twice and fails when the states differ.
//!
//! # Never modify an event, across releases
//!
//! `#[derive(Event)]` sees a field's type as written. A `Cell`, `RefCell` or
//! `OnceCell` behind a `type` alias or a wrapper still fails to compile, since
//! `Event` requires `Sync`, and a `Mutex`, `RwLock` or atomic lacks the
//! `Clone` and `PartialEq` it requires. What compiles (a `OnceLock` behind an
//! alias, with `#[serde(skip)]`) is caught by the event lock, which reads what
//! each field's type resolves to.
//!
//! The lock ([`testkit::check_event_lock`](crate::testkit::check_event_lock))
//! also keeps every released event's shape: a committed file records, by name
//! and version, the fields in order, their types as written and the serde
//! attributes that change the encoding (`rename`, `rename_all`, `tag`,
//! `flatten`, `skip…`, `default`, `with`, …). A released version whose shape
//! changed fails, naming the event and the field, and asks for a version bump
//! with `upcast_from`; so does a new version whose `upcast_from` chain does not
//! reach the released ones, and a released event type that is gone. It sees
//! the type's name, not inside it: a change to a struct used as a field's type
//! is out of its sight.
//!
//! # Crate-wide: `check_crate`
//!
//! With the feature `check-crate`, `factum::rules::check_crate(dir)` (`dir`
//! is a crate's `CARGO_MANIFEST_DIR`) reads the crate's source (`src/lib.rs`,
//! `src/main.rs`, `src/bin`, `tests`, `examples`, with every module they
//! declare, inline or in files, `#[path]` included), resolves its names, and
//! follows every `#[handle]`, `#[apply]` and view `#[on]` through the crate's
//! own free functions and methods, judging what it reaches with the same
//! tables as the compile-time check. It resolves module-level `use` items
//! (renames, groups, `self`), `crate::`, `self::` and `super::` paths, type
//! aliases to paths, and globs: a glob of one of the crate's modules by what
//! that module declares, a glob of an external module only when it is the
//! only one in scope (and never for prelude names such as `Some`). A call
//! that resolves to the crate's own item (a `mod fs`, a `fn random`, a
//! `mod rand`) is followed into, never flagged. One test runs it:
//!
//! ```no_run
//! # #[cfg(feature = "check-crate")]
//! #[test]
//! fn rules() {
//!     factum::rules::check_crate(env!("CARGO_MANIFEST_DIR")).unwrap()
//! }
//! # fn main() {}
//! ```
//!
//! Its report lists each violation as `file:line:column: message`, the
//! message being the compile-time check's, with the chain of calls from the
//! handler (`Account::opened → crate::audit::log() → println!`).
//!
//! It still cannot see calls through trait objects and generic bounds, or
//! methods on a value whose type only type checking knows (`clock.now()`);
//! other crates' code; what macros expand to; which `cfg` is on (every module
//! is read); and a closure, `match` or `for` binding that shadows a name a
//! glob of an external module would supply. The test kit's replay check stays
//! the last line.
//!
//! # Crate-wide, through clippy
//!
//! Clippy resolves names and types, so it also sees methods on values and
//! other crates' functions, for the whole crate (consumers included).
//! Users who keep their entities, views and workflows in a crate of their own
//! can forbid the same items there with a `clippy.toml`:
//!
//! ```toml
//! disallowed-methods = [
//!     { path = "std::time::SystemTime::now", reason = "use ctx.now() in #[handle]; in #[apply] the time comes from the event" },
//!     { path = "std::time::Instant::now", reason = "use ctx.now() in #[handle]; in #[apply] the time comes from the event" },
//!     { path = "std::thread::sleep", reason = "state must not depend on timing; send a command when the time comes" },
//!     { path = "tokio::time::Instant::now", reason = "use ctx.now()" },
//!     { path = "tokio::time::sleep", reason = "state must not depend on timing; send a command when the time comes" },
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
//!     { path = "std::env::var", reason = "side effects belong in the code that sends the command" },
//!     { path = "std::process::exit", reason = "side effects belong in the code that sends the command" },
//!     { path = "std::thread::spawn", reason = "side effects belong in the code that sends the command" },
//!     { path = "tokio::spawn", reason = "side effects belong in the code that sends the command" },
//! ]
//! disallowed-types = [
//!     { path = "rand::rngs::OsRng", reason = "use ctx.random_u64()" },
//!     { path = "rand::rngs::ThreadRng", reason = "use ctx.random_u64()" },
//! ]
//! ```
//!
//! Clippy applies it to the whole crate, consumers included, where side
//! effects are the point: allow `clippy::disallowed_methods` on those items.

#[cfg(feature = "check-crate")]
pub use factum_rules::source::{RuleViolation, RuleViolations, check_crate};
