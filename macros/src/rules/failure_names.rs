//! Rule: do not model "failed to create" as events, where `#[derive(Event)]`
//! sees it.
//!
//! Flags `#[derive(Event)]` types named like a rejected command, unless
//! `#[event(fact = "…")]` says why the name records something that happened;
//! the table and the reason are `factum_rules::failure_names`.

use factum_rules::failure_names::judge;

use crate::ctxt::Ctxt;

/// Reports an event type whose name matches a failure pattern, unless `fact`
/// (from `#[event(fact = "…")]`) states why it records a real fact.
pub(super) fn check(ident: &syn::Ident, fact: Option<&syn::LitStr>, cx: &Ctxt) {
    if let Some(fact) = fact {
        if fact.value().trim().is_empty() {
            cx.error_spanned_by(fact, "`fact` must say what real fact this event records (rule: do not model failed-to-create as events)");
        }
        return;
    }
    if let Some(pattern) = judge(&ident.to_string()) {
        cx.error_spanned_by(
            ident,
            format!(
                "`{ident}` is named like a failed command (`{pattern}`); an event records what happened, \
                 and a rejected command is an `Err` from #[handle], never stored \
                 (rule: do not model failed-to-create as events). If this name records a real fact \
                 (e.g. a payment the bank declined), say so with `#[event(fact = \"…\")]`."
            ),
        );
    }
}
