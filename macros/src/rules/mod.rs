//! The event-sourcing rules, checked on handler bodies and event types at compile time.
//!
//! The entity and view macros call [`check_impl`] with their handlers, which
//! walks each handler's body and the other methods of the same impl block it
//! reaches, and `#[derive(Event)]` calls [`check_event`]; every violation is
//! reported, each spanned on the tokens that break the rule (or, in a helper,
//! on the handler's call that reaches it). The tables and the judging
//! functions are the `factum-rules` crate's, shared with the runtime checks;
//! this module holds the walks over syn trees that feed them.
//!
//! What the check sees, what it cannot see, and the `clippy.toml` that covers
//! the rest are documented once, for users, in `factum::rules`
//! (`core/src/rules.rs`): update that page when a table here changes.

mod failure_names;
mod immutable_events;
mod reach;
#[cfg(test)]
mod tests;
mod walk;

pub(crate) use factum_rules::{At, Seen, Site};

use crate::ctxt::Ctxt;

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
