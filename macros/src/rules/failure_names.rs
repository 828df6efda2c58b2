//! Rule: do not model "failed to create" as events.
//!
//! Flags `#[derive(Event)]` types named like a rejected command, unless
//! `#[event(fact = "…")]` says why the name records something that happened.

use crate::ctxt::Ctxt;

/// Name prefixes that read as a failed command, each followed by a word.
const PREFIXES: &[&str] = &["FailedTo"];

/// Name suffixes that read as a failed command.
const SUFFIXES: &[&str] = &["CreationFailed", "Rejected"];

/// Do not model "failed to create" as events: an event records what happened,
/// and a command that was refused changed nothing. A rejection is the `Err`
/// a `#[handle]` returns to its caller, never stored; storing it would fill
/// the log with non-facts that every fold must skip. Returns the pattern the
/// name matches.
fn judge(name: &str) -> Option<String> {
    let prefix = PREFIXES.iter().find(|prefix| {
        name.strip_prefix(**prefix)
            .is_some_and(|rest| rest.chars().next().is_none_or(char::is_uppercase))
    });
    if let Some(prefix) = prefix {
        return Some(format!("{prefix}…"));
    }
    SUFFIXES
        .iter()
        .find(|suffix| name.ends_with(**suffix))
        .map(|suffix| format!("…{suffix}"))
}

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
