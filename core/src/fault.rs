//! Fault points: named places in the durable paths (appends, snapshots, view
//! commits) where a test makes the next operation fail, blocks it, or aborts
//! the whole process — so a crash test kills *at* the step it means to test,
//! and can check that it did, instead of killing after a random sleep.
//!
//! **Test only.** The points exist only with the `fault-points` cargo feature
//! (off by default; the workspace's test package turns it on). Without it
//! every function here is an `#[inline(always)]` no-op returning `Ok(())`
//! and `Fault` has no values, so a call site such as
//! `crate::fault::point("append.before")?` compiles to nothing.
//!
//! # Points
//!
//! | point | where | `fail` |
//! |---|---|---|
//! | `append.before` | an event store's `append`, after the request is validated, before it reaches the writer | the append returns `StoreError::Backend`, nothing written |
//! | `append.large.before` | the PostgreSQL store's `append` of a request of 256 KiB of payload or more, on its own path (not the batch writer), before it is sent | the append returns `StoreError::Backend`, nothing written |
//! | `append.after` | an event store, once an append's write is over (SQLite and PostgreSQL: the writer, for each answer of a committed batch), before its caller is answered | not allowed |
//! | `snapshot.save.before` | an event store's `save_snapshot`, before anything is written | the save returns `StoreError::Backend` (the runtime logs it; the command still succeeds) |
//! | `view.commit.before` | the view runner, a batch folded, before its rows and checkpoint are committed | the runner reports the error and retries from the stored checkpoint |
//! | `view.commit.inside` | a view store's commit (SQLite, PostgreSQL), the rows and the checkpoint written in its transaction, before the transaction commits | the commit returns `ViewStoreError::Backend`, the transaction rolls back |
//! | `view.commit.after` | the view runner, right after a batch's commit succeeded | the runner reports the error and resumes from the stored checkpoint (the batch stays committed) |
//! | `workflow.step.after` | the workflow runner, a step's attempt run (its entity calls committed), before its result is recorded | not allowed |
//!
//! The event stores are the memory, SQLite and PostgreSQL ones; the runner's
//! view points are reached on every view store, for the live table and for a
//! rebuild. A point is *hit* each time a thread reaches it, armed or not: hits are
//! numbered from 1, counting from the process start (or from `arm` /
//! `disarm_all` in-process).
//!
//! # Actions
//!
//! - `abort`: [`std::process::abort`]: no destructor, no flush, no commit runs
//!   after the point (the process ends with SIGABRT).
//! - `fail`: the operation returns an error whose message names the point
//!   (`fault point view.commit.before failed on purpose (hit 1)`). Refused when
//!   arming a point whose table row says "not allowed".
//! - `pause`: the thread that hit the point blocks until `release` or
//!   `disarm_all` in the same process; in a child process nobody can release
//!   it, so it blocks until the process is killed. In a multi-thread tokio
//!   runtime the other tasks keep running (the wait is in `block_in_place`);
//!   in a current-thread runtime the whole runtime blocks.
//!
//! Before it acts, an armed point announces itself on stderr with one line,
//! `fault point <point> hit <n>: <action>` (see `announcement`), so the
//! parent of a child process can assert that the kill landed where it meant.
//!
//! # Arming from the environment (child processes)
//!
//! `FACTUM_FAULT` holds rules separated by `,`:
//!
//! ```text
//! rule   = point "=" action [ "@" n [ ".." ] ]
//! action = "abort" | "fail" | "pause"
//! ```
//!
//! `@n` acts on the n-th hit only, `@n..` on the n-th and every later one,
//! no `@` on every hit. E.g. `FACTUM_FAULT=view.commit.after=abort@3` aborts
//! at the third commit of the view runner;
//! `FACTUM_FAULT=append.before=fail@2..,view.commit.before=pause@1`. The
//! variable is read once, when the first point is reached; an unknown point
//! or action, bad syntax, or `fail` where it is not allowed ends the process
//! at once with exit code 2 and a message on stderr: a misspelt rule must not
//! make a crash test run without its crash.
//!
//! # Arming from Rust (in-process tests)
//!
//! `factum::fault::arm("view.commit.before", Action::Fail, Hits::Onward(1))`,
//! then `disarm_all()`. The table is process-wide: tests that arm points must
//! not run concurrently with each other (serialise them with a lock), and the
//! other tests of the same binary would hit the armed points too. `hits`
//! counts how often a point was reached, `wait_paused` waits for a thread to
//! block at a paused point, `release` lets it go on. `tests/tests/fault_points.rs`
//! shows each action at work.

#[cfg(feature = "fault-points")]
pub use on::*;

#[cfg(not(feature = "fault-points"))]
pub(crate) use off::*;

/// The feature is off: nothing to arm, nothing reached, nothing fails.
#[cfg(not(feature = "fault-points"))]
mod off {
    /// A failure injected at a fault point: without the feature there are none.
    #[derive(Debug)]
    pub enum Fault {}

    /// Without the feature: nothing.
    #[inline(always)]
    pub(crate) fn point(_point: &'static str) -> Result<(), Fault> {
        Ok(())
    }

    /// Without the feature: nothing.
    #[inline(always)]
    pub(crate) fn hit(_point: &'static str) {}

    impl std::fmt::Display for Fault {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match *self {}
        }
    }

    impl std::error::Error for Fault {}
}

#[cfg(feature = "fault-points")]
mod on {
    use std::collections::HashMap;
    use std::io::Write;
    use std::sync::{Condvar, LazyLock, Mutex, MutexGuard, PoisonError};
    use std::time::{Duration, Instant};

    /// Every fault point, and whether it may be armed with [`Action::Fail`]
    /// (a point in a place that cannot return an error may not).
    pub const POINTS: &[(&str, bool)] = &[
        ("append.before", true),
        ("append.large.before", true),
        ("append.after", false),
        ("snapshot.save.before", true),
        ("view.commit.before", true),
        ("view.commit.inside", true),
        ("view.commit.after", true),
        ("consumer.commit.before", true),
        ("consumer.commit.after", true),
        ("producer.commit.before", true),
        ("workflow.step.after", false),
    ];

    /// The environment variable a process reads its rules from.
    pub const ENV: &str = "FACTUM_FAULT";

    /// What an armed point does when it is hit.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Action {
        /// End the process at once with [`std::process::abort`].
        Abort,
        /// Make the operation return an error naming the point.
        Fail,
        /// Block the thread until [`release`] or [`disarm_all`].
        Pause,
    }

    impl Action {
        /// The action's name in `FACTUM_FAULT` and in announcements.
        pub fn name(self) -> &'static str {
            match self {
                Action::Abort => "abort",
                Action::Fail => "fail",
                Action::Pause => "pause",
            }
        }
    }

    /// Which hits of an armed point act (hits are numbered from 1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Hits {
        /// Only the n-th hit (`@n`).
        Only(u64),
        /// The n-th hit and every later one (`@n..`; no `@` is `Onward(1)`).
        Onward(u64),
    }

    impl Hits {
        fn matches(self, hit: u64) -> bool {
            match self {
                Hits::Only(n) => hit == n,
                Hits::Onward(n) => hit >= n,
            }
        }
    }

    /// A failure injected at a fault point armed with [`Action::Fail`].
    #[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
    #[error("fault point {point} failed on purpose (hit {hit})")]
    pub struct Fault {
        /// The point.
        pub point: &'static str,
        /// Which hit of it failed.
        pub hit: u64,
    }

    /// A rule that cannot be armed.
    #[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
    pub enum ArmError {
        /// No point has that name (see [`POINTS`]).
        #[error("`{0}` is not a fault point (the points: {points})", points = names())]
        UnknownPoint(String),
        /// The point cannot return an error.
        #[error("fault point {0} cannot fail (it may abort or pause)")]
        CannotFail(&'static str),
        /// A `FACTUM_FAULT` rule does not parse.
        #[error("`{rule}`: {reason}; a rule is `point=abort|fail|pause[@n[..]]`")]
        Syntax {
            /// The rule as written.
            rule: String,
            /// What is wrong.
            reason: String,
        },
    }

    fn names() -> String {
        POINTS
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The line an armed point prints on stderr before it acts.
    pub fn announcement(point: &str, hit: u64, action: Action) -> String {
        format!("fault point {point} hit {hit}: {}", action.name())
    }

    #[derive(Default)]
    struct State {
        hits: u64,
        rule: Option<(Action, Hits)>,
        /// Threads blocked at the point now.
        paused: u64,
        /// Bumped by every release: a paused thread waits for it to change.
        releases: u64,
    }

    struct Table {
        points: HashMap<&'static str, State>,
    }

    static TABLE: LazyLock<(Mutex<Table>, Condvar)> = LazyLock::new(|| {
        let rules = std::env::var(ENV).unwrap_or_default();
        let mut table = Table {
            points: HashMap::new(),
        };
        if let Err(error) = parse_into(&rules, &mut table) {
            let _ = writeln!(std::io::stderr(), "{ENV}={rules}: {error}");
            std::process::exit(2);
        }
        (Mutex::new(table), Condvar::new())
    });

    fn lock() -> MutexGuard<'static, Table> {
        TABLE.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The point's static name, checked against [`POINTS`] and the action.
    fn check(point: &str, action: Action) -> Result<&'static str, ArmError> {
        match POINTS.iter().find(|(name, _)| *name == point) {
            None => Err(ArmError::UnknownPoint(point.to_owned())),
            Some((name, false)) if action == Action::Fail => Err(ArmError::CannotFail(name)),
            Some((name, _)) => Ok(name),
        }
    }

    /// Parses `FACTUM_FAULT` syntax into `table`.
    fn parse_into(rules: &str, table: &mut Table) -> Result<(), ArmError> {
        for rule in rules.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let syntax = |reason: &str| ArmError::Syntax {
                rule: rule.to_owned(),
                reason: reason.to_owned(),
            };
            let (point, spec) = rule.split_once('=').ok_or_else(|| syntax("no `=`"))?;
            let (action, hits) = match spec.split_once('@') {
                None => (spec, Hits::Onward(1)),
                Some((action, n)) => {
                    let (n, onward) = match n.strip_suffix("..") {
                        Some(n) => (n, true),
                        None => (n, false),
                    };
                    let n: u64 = n
                        .parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| syntax("the hit after `@` is a number from 1"))?;
                    (action, if onward { Hits::Onward(n) } else { Hits::Only(n) })
                }
            };
            let action = match action.trim() {
                "abort" => Action::Abort,
                "fail" => Action::Fail,
                "pause" => Action::Pause,
                _ => return Err(syntax("the action is `abort`, `fail` or `pause`")),
            };
            let point = check(point.trim(), action)?;
            table.points.entry(point).or_default().rule = Some((action, hits));
        }
        Ok(())
    }

    /// Arms `point` in this process: from now on its hits are counted from 1
    /// again, and those `hits` selects do `action`.
    pub fn arm(point: &str, action: Action, hits: Hits) -> Result<(), ArmError> {
        let point = check(point, action)?;
        let mut table = lock();
        let state = table.points.entry(point).or_default();
        state.hits = 0;
        state.rule = Some((action, hits));
        Ok(())
    }

    /// Disarms every point, releases every paused thread and resets every
    /// hit count to 0.
    pub fn disarm_all() {
        let mut table = lock();
        for state in table.points.values_mut() {
            state.hits = 0;
            state.rule = None;
            state.releases += 1;
        }
        TABLE.1.notify_all();
    }

    /// Releases the threads paused at `point` now; the point stays armed.
    pub fn release(point: &str) {
        let mut table = lock();
        if let Some(state) = table.points.get_mut(point) {
            state.releases += 1;
        }
        TABLE.1.notify_all();
    }

    /// How often `point` was reached since the process started, or since it
    /// was last armed, or since [`disarm_all`]. 0 for a name that is no point.
    pub fn hits(point: &str) -> u64 {
        lock().points.get(point).map_or(0, |s| s.hits)
    }

    /// Waits until a thread is paused at `point`; false if none was within `within`.
    pub fn wait_paused(point: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut table = lock();
        loop {
            if table.points.get(point).is_some_and(|s| s.paused > 0) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            table = TABLE
                .1
                .wait_timeout(table, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Reaches `point`: counts the hit and, when armed for it, acts.
    pub(crate) fn point(point: &'static str) -> Result<(), Fault> {
        let mut table = lock();
        let state = table.points.entry(point).or_default();
        state.hits += 1;
        let hit = state.hits;
        let Some((action, _)) = state.rule.filter(|(_, hits)| hits.matches(hit)) else {
            return Ok(());
        };
        // stderr is unbuffered: the line is out before the process ends.
        let _ = writeln!(std::io::stderr(), "{}", announcement(point, hit, action));
        match action {
            Action::Abort => std::process::abort(),
            Action::Fail => Err(Fault { point, hit }),
            Action::Pause => {
                let releases = state.releases;
                state.paused += 1;
                TABLE.1.notify_all();
                let wait = move || {
                    let unreleased =
                        |t: &mut Table| t.points.get(point).is_some_and(|s| s.releases == releases);
                    let mut table = TABLE
                        .1
                        .wait_while(table, unreleased)
                        .unwrap_or_else(PoisonError::into_inner);
                    if let Some(state) = table.points.get_mut(point) {
                        state.paused -= 1;
                    }
                };
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                        tokio::task::block_in_place(wait)
                    }
                    _ => wait(),
                }
                Ok(())
            }
        }
    }

    /// Reaches a point that cannot fail (see [`POINTS`]): counts the hit and,
    /// when armed for it, aborts or pauses.
    pub(crate) fn hit(name: &'static str) {
        // Arming `fail` here is refused, so there is no error to drop.
        let _ = point(name);
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn parsed(rules: &str) -> Result<Vec<(&'static str, Action, Hits)>, ArmError> {
            let mut table = Table {
                points: HashMap::new(),
            };
            parse_into(rules, &mut table)?;
            let mut out: Vec<_> = table
                .points
                .into_iter()
                .filter_map(|(p, s)| s.rule.map(|(a, h)| (p, a, h)))
                .collect();
            out.sort_by_key(|r| r.0);
            Ok(out)
        }

        #[test]
        fn the_env_syntax_parses_each_form() {
            assert_eq!(
                parsed("view.commit.after=abort@3, append.before=fail@2..,snapshot.save.before=pause"),
                Ok(vec![
                    ("append.before", Action::Fail, Hits::Onward(2)),
                    ("snapshot.save.before", Action::Pause, Hits::Onward(1)),
                    ("view.commit.after", Action::Abort, Hits::Only(3)),
                ])
            );
            assert_eq!(parsed(""), Ok(vec![]));
        }

        #[test]
        fn a_misspelt_rule_is_refused() {
            assert!(matches!(
                parsed("view.comit.after=abort"),
                Err(ArmError::UnknownPoint(_))
            ));
            assert!(matches!(
                parsed("append.after=fail@1"),
                Err(ArmError::CannotFail(_))
            ));
            assert!(matches!(
                parsed("append.before=crash"),
                Err(ArmError::Syntax { .. })
            ));
            assert!(matches!(
                parsed("append.before=abort@0"),
                Err(ArmError::Syntax { .. })
            ));
            assert!(matches!(parsed("append.before"), Err(ArmError::Syntax { .. })));
        }
    }
}
