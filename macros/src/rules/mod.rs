//! The event-sourcing rules, checked on handler bodies and event types at compile time.
//!
//! The entity and view macros call [`check_body`] on every handler body and
//! `#[derive(Event)]` calls [`check_event`]; every violation is reported, each
//! spanned on the tokens that break the rule. One submodule per rule holds its
//! table and the one function that judges against it.
//!
//! What the check sees, what it cannot see, and the `clippy.toml` that covers
//! the rest are documented once, for users, in `factum::rules`
//! (`core/src/rules.rs`): update that page when a table here changes.

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
#[allow(dead_code)] // WorkflowDecision waits for the workflow macro; the rule tests already cover it
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
