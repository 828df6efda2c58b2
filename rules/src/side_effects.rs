//! Rule: never produce side effects when processing events.
//!
//! Every handler body is kept from the process environment, process control
//! and spawning; bodies that fold events (apply, view, workflow decision) are
//! also kept from files, the network, printing and `unsafe`.

use super::Pattern::{self, Contains, Tail};
use super::{At, Seen, Site};

/// Forbidden in every body, with what the item does.
const EVERYWHERE: &[(Pattern, &str)] = &[
    (Contains(&["std", "env"]), "reads the process environment"),
    (Contains(&["std", "process"]), "controls processes"),
    (Contains(&["tokio", "process"]), "controls processes"),
    (Tail(&["thread", "spawn"]), "spawns a thread"),
    (Tail(&["tokio", "spawn"]), "spawns a task"),
    (Tail(&["task", "spawn"]), "spawns a task"),
    (Tail(&["spawn_blocking"]), "spawns a task"),
];

/// Forbidden where events are folded (apply, view, workflow decision).
const WHILE_FOLDING: &[(Pattern, &str)] = &[
    (Contains(&["std", "fs"]), "touches the file system"),
    (Contains(&["tokio", "fs"]), "touches the file system"),
    (Contains(&["std", "net"]), "uses the network"),
    (Contains(&["tokio", "net"]), "uses the network"),
    (Tail(&["io", "stdout"]), "writes to the terminal"),
    (Tail(&["io", "stderr"]), "writes to the terminal"),
    (Tail(&["io", "stdin"]), "reads the terminal"),
];

/// Printing macros, forbidden where events are folded.
const PRINT_MACROS: &[&str] = &["println", "print", "eprintln", "eprint", "dbg"];

/// Never produce side effects when processing events: an event is folded
/// again on every replay, rebuild and snapshot, and a handler may run again
/// on retry, so any effect would repeat (and a fold that depends on the
/// outside world rebuilds different state). Effects belong around the command
/// instead: inputs read before `send` travel in the command, and effects of
/// the outcome run once, after `send` returns; in a workflow decision, in a `#[step]`.
pub(crate) fn judge(seen: &Seen, at: &At<'_>) -> Option<String> {
    let site = at.site;
    let folding = site != Site::Handle;
    let does = match seen {
        Seen::Path(path) => {
            let forbidden = EVERYWHERE.iter().chain(if folding { WHILE_FOLDING } else { &[] });
            forbidden.into_iter().find(|(p, _)| p.matches(path))?.1
        }
        Seen::Macro(path) if folding && path.last().is_some_and(|m| PRINT_MACROS.contains(&m.as_str())) => {
            "prints"
        }
        Seen::Unsafe if folding => "block (which can reach `static mut` state, FFI and raw memory)",
        _ => return None,
    };
    let why = match site {
        Site::Handle => "a handler may run again on retry, so the effect would repeat",
        Site::Apply | Site::ViewOn => "an event is folded again on every replay, so the effect would repeat",
        Site::WorkflowDecision => {
            "a decision may run again when its command is retried, so the effect would repeat"
        }
    };
    let instead = match site {
        Site::WorkflowDecision => {
            "Side effects belong in a `#[step]`: return `Then::to(Self::step, input)` and do the work there, \
             where entity calls carry derived command ids."
        }
        _ => {
            "Side effects belong in the code that sends the command: read inputs before `send` and put \
             them in the command, and act on the outcome after `send` returns."
        }
    };
    Some(format!(
        "{} {does} in {}; {why} (rule: never produce side effects when processing events). {instead}",
        at.shown(seen),
        at.body(seen),
    ))
}
