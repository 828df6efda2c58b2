//! The event-sourcing rules, checked on handler bodies and event types at compile time.
//!
//! The entity and view macros call [`check_impl`] with their handlers, which
//! walks each handler's body and the other methods of the same impl block it
//! reaches, and `#[derive(Event)]` calls [`check_event`]; every violation is
//! reported, each spanned on the tokens that break the rule (or, in a helper,
//! on the handler's call that reaches it). One submodule per rule holds its
//! table and the one function that judges against it.
//!
//! What the check sees, what it cannot see, and the `clippy.toml` that covers
//! the rest are documented once, for users, in `factum::rules`
//! (`core/src/rules.rs`): update that page when a table here changes.

mod clock;
mod failure_names;
mod immutable_events;
mod random;
mod reach;
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

/// One thing a body does that a rule may forbid, by the names it was written
/// with, or that a `use` in the body gives them.
#[derive(Clone, Debug)]
pub(crate) enum Seen {
    /// A path in expression position: a callee, a value, a method receiver.
    Path(Vec<String>),
    /// `receiver.method(…)` where the receiver is a path.
    Method { receiver: Vec<String>, method: String },
    /// A macro invocation, by the macro's path.
    Macro(Vec<String>),
    /// An `unsafe` block.
    Unsafe,
}

impl Seen {
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

/// Where a rule judges what it saw: the site, how the handler reaches the
/// code, and what that code wrote when a `use` renamed it.
pub(crate) struct At<'a> {
    site: Site,
    /// The calls from the handler to the code, as written:
    /// `["deposit", "self.stamp()"]`; empty in the handler's own body.
    chain: &'a [String],
    /// The code as written, when a `use` in its body gives it another path
    /// (`T::now` for `std::time::SystemTime::now`), with `()` when called.
    written: Option<&'a str>,
    /// `()` after the path in the chain: it was called, not named.
    called: bool,
}

impl At<'_> {
    /// How a message names what was seen: "`SystemTime::now`", or with the
    /// name it was written under, "`T::now` (`std::time::SystemTime::now`)".
    fn shown(&self, seen: &Seen) -> String {
        match self.written {
            Some(written) => format!("`{written}` (`{}`)", seen.shown()),
            None => format!("`{}`", seen.shown()),
        }
    }

    /// Where it was seen: "a #[handle] body", or through helpers,
    /// "a helper of a #[handle] body (`deposit → self.stamp() → SystemTime::now()`)".
    fn body(&self, seen: &Seen) -> String {
        if self.chain.is_empty() {
            return self.site.body().to_owned();
        }
        let last = match self.written {
            Some(written) => written.to_owned(),
            None => seen.shown(),
        };
        let call = if self.called { "()" } else { "" };
        format!(
            "a helper of {} (`{} → {last}{call}`)",
            self.site.body(),
            self.chain.join(" → ")
        )
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

/// Reports every rule violation in the `roots` of an impl block (each a
/// handler with the site it runs in) and in the other methods of `item` each
/// one reaches, spanned on the offending tokens or, for a helper, on the
/// handler's call that reaches it.
pub(crate) fn check_impl(item: &syn::ItemImpl, roots: &[(&syn::ImplItemFn, Site)], cx: &Ctxt) {
    reach::check(item, roots, cx);
}

/// Reports every rule violation in one body that belongs to no impl block.
#[cfg(test)]
pub(crate) fn check_body(body: &syn::Block, site: Site, cx: &Ctxt) {
    reach::check_alone(body, site, cx);
}

/// Reports rule violations in an event type's declaration: a failure name
/// (unless `fact` states why the name records a real fact) and interior mutability.
pub(crate) fn check_event(input: &syn::DeriveInput, fact: Option<&syn::LitStr>, cx: &Ctxt) {
    failure_names::check(&input.ident, fact, cx);
    immutable_events::check(&input.data, cx);
}
