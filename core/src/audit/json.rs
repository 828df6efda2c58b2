//! JSON paths and field-by-field differences: how `diff` and `blame` talk
//! about a state without knowing its Rust type.

use serde::Serialize;
use serde_json::Value;

use super::AuditError;

/// A path into a JSON value: `balance`, `owner.name`, `lines[2].price`, or a
/// JSON pointer (`/lines/2/price`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

impl JsonPath {
    /// Parses a path; fails with [`AuditError::InvalidPath`] on an empty one,
    /// an empty segment or an unclosed `[`.
    pub fn parse(text: &str) -> Result<Self, AuditError> {
        let invalid = |reason: &str| AuditError::InvalidPath {
            path: text.to_owned(),
            reason: reason.to_owned(),
        };
        let mut steps = Vec::new();
        if let Some(pointer) = text.strip_prefix('/') {
            for segment in pointer.split('/') {
                let segment = segment.replace("~1", "/").replace("~0", "~");
                steps.push(match segment.parse::<usize>() {
                    Ok(i) => Step::Index(i),
                    Err(_) => Step::Key(segment),
                });
            }
        } else {
            let body = text
                .strip_prefix("$.")
                .or_else(|| text.strip_prefix('.'))
                .unwrap_or(text);
            if body.is_empty() {
                return Err(invalid("the path is empty; name a field, e.g. `balance`"));
            }
            for part in body.split('.') {
                let (key, mut rest) = match part.find('[') {
                    Some(i) => (&part[..i], &part[i..]),
                    None => (part, ""),
                };
                if key.is_empty() && rest.is_empty() {
                    return Err(invalid("a segment is empty (two dots in a row?)"));
                }
                if !key.is_empty() {
                    steps.push(Step::Key(key.to_owned()));
                }
                while !rest.is_empty() {
                    let close = rest.find(']').ok_or_else(|| invalid("a `[` is not closed"))?;
                    let index = rest[1..close]
                        .parse::<usize>()
                        .map_err(|_| invalid("an index in `[…]` is not a number"))?;
                    steps.push(Step::Index(index));
                    rest = &rest[close + 1..];
                    if !rest.is_empty() && !rest.starts_with('[') {
                        return Err(invalid("after `]` comes `.`, `[` or the end"));
                    }
                }
            }
        }
        Ok(JsonPath {
            text: text.to_owned(),
            steps,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value at this path in `value`, if there is one.
    pub fn get<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        self.steps.iter().try_fold(value, |v, step| match step {
            Step::Key(key) => v.as_object()?.get(key),
            Step::Index(i) => v.as_array()?.get(*i),
        })
    }
}

/// One field that differs between two states.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldChange {
    /// Where, as `a.b[2].c` (empty for the whole value).
    pub path: String,
    /// The value before (`None`: the field did not exist).
    pub before: Option<Value>,
    /// The value after (`None`: the field no longer exists).
    pub after: Option<Value>,
}

/// Every leaf that differs between `before` and `after`, in path order:
/// objects are compared key by key, arrays index by index, anything else as a whole.
pub fn diff(before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    diff_into(String::new(), Some(before), Some(after), &mut out);
    out
}

fn diff_into(path: String, before: Option<&Value>, after: Option<&Value>, out: &mut Vec<FieldChange>) {
    match (before, after) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))).collect();
            keys.sort();
            for key in keys {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                diff_into(sub, a.get(key), b.get(key), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            for i in 0..a.len().max(b.len()) {
                diff_into(format!("{path}[{i}]"), a.get(i), b.get(i), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(FieldChange {
            path,
            before: a.cloned(),
            after: b.cloned(),
        }),
    }
}

/// A JSON value as one short line for a table cell (`-` for none).
pub fn cell(value: Option<&Value>) -> String {
    match value {
        None => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_reach_nested_fields_and_array_items() {
        let v = json!({"owner": {"name": "Ada"}, "lines": [{"price": 3}, {"price": 4}]});
        assert_eq!(
            JsonPath::parse("owner.name").unwrap().get(&v),
            Some(&json!("Ada"))
        );
        assert_eq!(
            JsonPath::parse("lines[1].price").unwrap().get(&v),
            Some(&json!(4))
        );
        assert_eq!(
            JsonPath::parse("/lines/0/price").unwrap().get(&v),
            Some(&json!(3))
        );
        assert_eq!(JsonPath::parse("$.missing").unwrap().get(&v), None);
        assert!(JsonPath::parse("a..b").is_err());
        assert!(JsonPath::parse("a[1").is_err());
        assert!(JsonPath::parse("").is_err());
    }

    #[test]
    fn a_diff_names_each_changed_leaf() {
        let a = json!({"balance": 5, "owner": "Ada", "tags": [1]});
        let b = json!({"balance": 7, "owner": "Ada", "tags": [1, 2], "open": true});
        let paths: Vec<_> = diff(&a, &b)
            .into_iter()
            .map(|c| (c.path, c.before, c.after))
            .collect();
        assert_eq!(
            paths,
            vec![
                ("balance".into(), Some(json!(5)), Some(json!(7))),
                ("open".into(), None, Some(json!(true))),
                ("tags[1]".into(), None, Some(json!(2))),
            ]
        );
    }
}
