//! The event-sourcing rules as data: what each rule forbids, by name, and the
//! message that says why and what to write instead.
//!
//! One module per rule holds its table and the one function that judges
//! against it. The tables are written once, here, and read by every walker:
//! the compile-time check in `factum-macros`, which walks handler bodies and
//! the helpers of their impl block; the crate-wide check ([`source`], feature
//! `source`), which walks a crate's source with its names resolved; and the
//! event lock in `factum`, which judges what a field's type resolves to. A
//! walker says what it saw ([`Seen`]) and where ([`At`]), and [`judge`]
//! answers. Use it through `factum`; what the checks see and miss is
//! documented for users in `factum::rules`.
#![forbid(unsafe_code)]

mod clock;
pub mod failure_names;
pub mod immutable_events;
mod random;
mod side_effects;
#[cfg(feature = "source")]
pub mod source;

/// Where a body runs, which decides what it may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
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
    /// The body's name in a message: "in `a #[handle] body`".
    pub fn body(self) -> &'static str {
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
pub enum Seen {
    /// A path in expression position: a callee, a value, a method receiver.
    Path(Vec<String>),
    /// `receiver.method(…)` where the receiver is a path.
    Method {
        /// The receiver's path segments.
        receiver: Vec<String>,
        /// The method's name.
        method: String,
    },
    /// A macro invocation, by the macro's path.
    Macro(Vec<String>),
    /// An `unsafe` block.
    Unsafe,
}

impl Seen {
    /// How the message names what was seen, without generics or a leading `::`.
    pub fn shown(&self) -> String {
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
pub struct At<'a> {
    /// Where the code runs.
    pub site: Site,
    /// The calls from the handler to the code, as written:
    /// `["deposit", "self.stamp()"]`; empty in the handler's own body.
    pub chain: &'a [String],
    /// The code as written, when a `use` in its body gives it another path
    /// (`T::now` for `std::time::SystemTime::now`), with `()` when called.
    pub written: Option<&'a str>,
    /// `()` after the path in the chain: it was called, not named.
    pub called: bool,
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

    /// Where it was seen: `a #[handle] body`, or through helpers,
    /// `` a helper of a #[handle] body (`deposit → self.stamp() → SystemTime::now()`) ``.
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

/// Every message the body rules (clock, random numbers, side effects) give
/// for `seen` at `at`; empty when none forbids it.
pub fn judge(seen: &Seen, at: &At<'_>) -> Vec<String> {
    let judges: [fn(&Seen, &At<'_>) -> Option<String>; 3] =
        [clock::judge, random::judge, side_effects::judge];
    judges.iter().filter_map(|judge| judge(seen, at)).collect()
}
