//! Rule: do not model "failed to create" as events.
//!
//! Flags event type names that read like a rejected command.

/// Name prefixes that read as a failed command, each followed by a word.
const PREFIXES: &[&str] = &["FailedTo"];

/// Name suffixes that read as a failed command.
const SUFFIXES: &[&str] = &["CreationFailed", "Rejected"];

/// Do not model "failed to create" as events: an event records what happened,
/// and a command that was refused changed nothing. A rejection is the `Err`
/// a `#[handle]` returns to its caller, never stored; storing it would fill
/// the log with non-facts that every fold must skip. Returns the pattern the
/// name matches (`FailedTo…`, `…Rejected`).
pub fn judge(name: &str) -> Option<String> {
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
