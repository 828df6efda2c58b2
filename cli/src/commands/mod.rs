//! One module per subcommand: its clap `Args` and its `run`.

pub(crate) mod blame;
pub(crate) mod catalogue;
pub(crate) mod consumers;
pub(crate) mod diff;
pub(crate) mod history;
pub(crate) mod state;
pub(crate) mod streams;
pub(crate) mod trace;
pub(crate) mod views;
pub(crate) mod what_if;

use factum::audit::{StateAt, cell};
use serde_json::Value;

use crate::output::{Output, Table};

/// Every leaf of a JSON value with its path (`a.b[1]`), in order.
pub(crate) fn leaves(value: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    walk(String::new(), value, &mut out);
    out
}

fn walk(path: String, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                walk(
                    if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    },
                    v,
                    out,
                );
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                walk(format!("{path}[{i}]"), v, out);
            }
        }
        other => out.push((
            if path.is_empty() { "(value)".into() } else { path },
            cell(Some(other)),
        )),
    }
}

/// A state as a field/value table.
pub(crate) fn print_state(out: &Output, state: &Value, indent: &str) -> std::io::Result<()> {
    let mut table = Table::new(&["field", "value"]);
    for (path, value) in leaves(state) {
        table.row(vec![path, value]);
    }
    table.print(out, indent)
}

/// `account/acc-ada at version 3 of 5 (recorded 2030-…)`.
pub(crate) fn describe(state: &StateAt) -> String {
    let when = state.recorded_at.map_or_else(
        || "before its first event".to_owned(),
        |t| format!("recorded {t}"),
    );
    let snapshot = state.from_snapshot.map_or_else(String::new, |v| {
        format!(", folded from the snapshot at version {v}")
    });
    format!(
        "{}/{} at version {} of {} ({when}{snapshot})",
        state.stream_type, state.stream_id, state.version, state.stream_version
    )
}

/// A JSON value on one line.
pub(crate) fn compact(value: &Value) -> String {
    value.to_string()
}
