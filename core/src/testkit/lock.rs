//! The event lock: rule 1 ("never modify an event") across releases.
//!
//! An event, once stored, keeps the shape it was written with: a field renamed,
//! retyped, added or dropped between releases breaks every stored event of
//! that type, and nothing in one build can see it. The lock is a committed
//! file with the shape of every event type by name and version, as
//! `#[derive(Event)]` read it (fields in order, their types as written, the
//! serde attributes that change the encoding). [`check_event_lock`] compares
//! the program's event catalogue with it; [`update_event_lock`] (or the check
//! with `FACTUM_UPDATE_LOCK=1`) rewrites it, explicitly, as snapshot-testing
//! tools do.
//!
//! The file is one JSON document sorted by name and version, one line per
//! field, so a change reads as a one-line diff naming the field. The Rust type
//! name is kept for the reader only: renaming a type keeps its stored events.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::event::{EventRegistration, catalogue};

/// The environment variable that makes [`check_event_lock`] rewrite the lock.
pub const UPDATE_LOCK_VAR: &str = "FACTUM_UPDATE_LOCK";

/// Compares the event catalogue of this program with the lock file at `path`.
///
/// Fails, listing every problem, when a (name, version) in the lock has
/// another shape now, when the current version of an event has no
/// `upcast_from` chain down to a version the lock holds (stored events of it
/// would not load), or when an event type in the lock is gone. Event types
/// and versions the lock does not hold yet pass, with a note on stderr. With
/// `FACTUM_UPDATE_LOCK=1` it writes the lock instead (see [`update_event_lock`]).
///
/// It also fails on a field whose type resolves to one with interior
/// mutability (`type Cache = OnceLock<u64>`), which `#[derive(Event)]` cannot
/// see through the alias.
///
/// ```no_run
/// #[test]
/// fn events_keep_their_shape() {
///     factum::testkit::check_event_lock(concat!(env!("CARGO_MANIFEST_DIR"), "/events.lock.json")).unwrap();
/// }
/// ```
///
/// Only events linked into the program are in the catalogue: an integration
/// test of a library names the library (`use my_domain as _;`).
pub fn check_event_lock(path: impl AsRef<Path>) -> Result<(), EventLockError> {
    let path = path.as_ref();
    if std::env::var(UPDATE_LOCK_VAR).is_ok_and(|v| v == "1") {
        return update_event_lock(path);
    }
    let text = std::fs::read_to_string(path).map_err(|source| EventLockError::Read {
        path: path.to_owned(),
        source,
    })?;
    let lock: LockFile = serde_json::from_str(&text).map_err(|source| EventLockError::Parse {
        path: path.to_owned(),
        source,
    })?;
    let current = Current::of(catalogue());
    let mut problems = interior_mutability(catalogue());
    problems.extend(compare(&lock.events, &current));
    if !problems.is_empty() {
        return Err(EventLockError::Mismatch {
            path: path.to_owned(),
            problems,
        });
    }
    let locked: BTreeSet<(&str, u32)> = lock.events.iter().map(|e| (e.name.as_str(), e.version)).collect();
    let new: Vec<String> = current
        .shapes
        .iter()
        .filter(|(key, _)| !locked.contains(&(key.0, key.1)))
        .map(|((name, version), shape)| format!("`{name}` v{version} (`{}`)", shape.rust_type))
        .collect();
    if !new.is_empty() {
        eprintln!(
            "factum event lock {}: not recorded yet: {}; record them with {UPDATE_LOCK_VAR}=1",
            path.display(),
            new.join(", ")
        );
    }
    Ok(())
}

/// Writes the lock at `path` from the event catalogue of this program,
/// replacing what it held. Do this when events are added, and review the diff:
/// a changed line under a version already released is a broken stored event.
/// Problems the new lock overrides are printed on stderr; interior mutability
/// is not a shape to accept, so it fails and writes nothing.
pub fn update_event_lock(path: impl AsRef<Path>) -> Result<(), EventLockError> {
    let path = path.as_ref();
    let problems = interior_mutability(catalogue());
    if !problems.is_empty() {
        return Err(EventLockError::Mismatch {
            path: path.to_owned(),
            problems,
        });
    }
    let current = Current::of(catalogue());
    if let Ok(text) = std::fs::read_to_string(path)
        && let Ok(old) = serde_json::from_str::<LockFile>(&text)
    {
        for problem in compare(&old.events, &current) {
            eprintln!("factum event lock {}: overriding: {problem}", path.display());
        }
    }
    std::fs::write(path, render(&current)).map_err(|source| EventLockError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Why the event lock does not hold, or could not be read or written.
#[derive(thiserror::Error)]
pub enum EventLockError {
    /// The lock file could not be read.
    #[error("cannot read the event lock {}: {source}. Write it with {UPDATE_LOCK_VAR}=1 and commit it", path.display())]
    Read {
        /// The lock file.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// The lock file is not an event lock.
    #[error("the event lock {} does not parse: {source}. Rewrite it with {UPDATE_LOCK_VAR}=1", path.display())]
    Parse {
        /// The lock file.
        path: PathBuf,
        /// What the JSON parser said.
        #[source]
        source: serde_json::Error,
    },
    /// The lock file could not be written.
    #[error("cannot write the event lock {}: {source}", path.display())]
    Write {
        /// The lock file.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// The program's events do not match the lock.
    #[error("{}", mismatch(path, problems))]
    Mismatch {
        /// The lock file.
        path: PathBuf,
        /// Every problem, by event name and version.
        problems: Vec<LockProblem>,
    },
}

/// `unwrap()` in a test prints the message, not a struct dump.
impl fmt::Debug for EventLockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn mismatch(path: &Path, problems: &[LockProblem]) -> String {
    let mut out = format!(
        "the events of this program do not match the event lock {} (rule: never modify an event):",
        path.display()
    );
    for problem in problems {
        out.push_str("\n- ");
        out.push_str(&problem.to_string());
    }
    out
}

/// One way the program's events break the lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockProblem {
    /// A (name, version) the lock holds has another shape now.
    ShapeChanged {
        /// The stable name.
        name: String,
        /// The version whose shape changed.
        version: u32,
        /// The Rust type declaring it now.
        rust_type: String,
        /// Each change, naming the field: "field `amount` changed type from `u32` to `u64`".
        changes: Vec<String>,
    },
    /// The current version of an event does not upcast from a version the lock holds.
    NoUpcastPath {
        /// The stable name.
        name: String,
        /// The version written now.
        version: u32,
        /// The Rust type declaring it.
        rust_type: String,
        /// The stored version its `upcast_from` chain does not reach.
        missing: u32,
        /// The versions the chain does reach, from the current one down.
        chain: Vec<u32>,
    },
    /// An event type the lock holds is no longer in the program.
    Removed {
        /// The stable name.
        name: String,
        /// The versions the lock holds.
        versions: Vec<u32>,
        /// The Rust type the lock names.
        rust_type: String,
    },
    /// A field's type resolves to one that can change behind `&`.
    InteriorMutability {
        /// The stable name.
        name: String,
        /// The version.
        version: u32,
        /// The Rust type declaring it.
        rust_type: String,
        /// The field.
        field: String,
        /// Its type as written (an alias).
        written: String,
        /// What it resolves to, from `std::any::type_name`.
        resolved: String,
        /// The interior-mutable types in it: `OnceLock`.
        found: Vec<String>,
    },
    /// Two types in the program declare one (name, version) with different shapes.
    Duplicate {
        /// The stable name.
        name: String,
        /// The version.
        version: u32,
        /// The Rust types declaring it.
        rust_types: Vec<String>,
    },
}

impl fmt::Display for LockProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockProblem::ShapeChanged {
                name,
                version,
                rust_type,
                changes,
            } => write!(
                f,
                "`{name}` v{version} (`{rust_type}`) changed its shape: {}. Events stored as version \
                 {version} have the old shape. Keep it as a type of its own (`{rust_type}V{version}`, \
                 with `#[event(name = \"{name}\", version = {version})]`), and bump this one: \
                 `#[event(version = {next}, upcast_from = {rust_type}V{version})]` with `From<{rust_type}V{version}>`",
                changes.join("; "),
                next = version + 1,
            ),
            LockProblem::NoUpcastPath {
                name,
                version,
                rust_type,
                missing,
                chain,
            } => {
                let chain = chain.iter().map(u32::to_string).collect::<Vec<_>>().join(" → ");
                write!(
                    f,
                    "`{name}` v{version} (`{rust_type}`) cannot load stored version {missing}: the lock holds \
                     version {missing}, and the `upcast_from` chain of version {version} is {chain}. Keep \
                     version {missing} as its own type and reach it with `#[event(upcast_from = …)]`"
                )
            }
            LockProblem::Removed {
                name,
                versions,
                rust_type,
            } => {
                let versions = versions.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
                write!(
                    f,
                    "`{name}` (`{rust_type}`, version {versions} in the lock) is no longer an event of this \
                     program: its stored events will not load. Keep the type, or, if no store holds an \
                     event of it, drop it from the lock with {UPDATE_LOCK_VAR}=1"
                )
            }
            LockProblem::InteriorMutability {
                name,
                version,
                rust_type,
                field,
                written,
                resolved,
                found,
            } => write!(
                f,
                "`{name}` v{version} (`{rust_type}`): field `{field}` is `{written}`, which is `{resolved}`: \
                 {} can change after the event is recorded; events are immutable facts. Store the plain \
                 value instead",
                found
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
            LockProblem::Duplicate {
                name,
                version,
                rust_types,
            } => write!(
                f,
                "`{name}` v{version} is declared with different shapes by {}: a stored event has one \
                 shape. Give one of them another `name` or `version`",
                rust_types
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        }
    }
}

// ---- the file ---------------------------------------------------------------

#[derive(Deserialize)]
struct LockFile {
    events: Vec<LockedEvent>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
struct LockedEvent {
    name: String,
    version: u32,
    #[serde(default)]
    rust_type: String,
    #[serde(default)]
    serde: Vec<String>,
    #[serde(default)]
    fields: Vec<LockedField>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
struct LockedField {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    serde: Vec<String>,
}

/// The lock as text: one JSON document, sorted by name and version, one
/// line per field, so that a diff names what changed.
fn render(current: &Current) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let list = |items: &[String]| items.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ");
    let mut out = String::from("{\n");
    out.push_str(&format!(
        "  \"about\": {},\n",
        q(
            "factum event lock: the shape of every event type by name and version. Checked by \
           factum::testkit::check_event_lock; rewritten with FACTUM_UPDATE_LOCK=1."
        )
    ));
    out.push_str("  \"events\": [");
    for (i, ((name, version), shape)) in current.shapes.iter().enumerate() {
        out.push_str(if i == 0 { "\n" } else { ",\n" });
        out.push_str("    {\n");
        out.push_str(&format!("      \"name\": {},\n", q(name)));
        out.push_str(&format!("      \"version\": {version},\n"));
        out.push_str(&format!("      \"rust_type\": {},\n", q(shape.rust_type)));
        if !shape.serde.is_empty() {
            out.push_str(&format!("      \"serde\": [{}],\n", list(&shape.serde)));
        }
        out.push_str("      \"fields\": [");
        for (j, field) in shape.fields.iter().enumerate() {
            out.push_str(if j == 0 { "\n" } else { ",\n" });
            out.push_str(&format!(
                "        {{ \"name\": {}, \"type\": {}",
                q(&field.name),
                q(&field.ty)
            ));
            if !field.serde.is_empty() {
                out.push_str(&format!(", \"serde\": [{}]", list(&field.serde)));
            }
            out.push_str(" }");
        }
        out.push_str(if shape.fields.is_empty() {
            "]\n"
        } else {
            "\n      ]\n"
        });
        out.push_str("    }");
    }
    out.push_str(if current.shapes.is_empty() {
        "]\n}\n"
    } else {
        "\n  ]\n}\n"
    });
    out
}

// ---- the comparison ---------------------------------------------------------

/// The catalogue, by (name, version).
struct Current {
    shapes: BTreeMap<(&'static str, u32), Shape>,
    /// (name, version) declared twice with different shapes, with the types.
    duplicates: BTreeMap<(&'static str, u32), Vec<String>>,
}

struct Shape {
    rust_type: &'static str,
    upcast_from: Option<u32>,
    serde: Vec<String>,
    fields: Vec<LockedField>,
}

impl Shape {
    fn of(registration: &EventRegistration) -> Self {
        Shape {
            rust_type: registration.rust_type,
            upcast_from: registration.upcast_from,
            serde: registration.serde.iter().map(|s| (*s).to_owned()).collect(),
            fields: registration
                .fields
                .iter()
                .map(|field| LockedField {
                    name: field.name.to_owned(),
                    ty: field.ty.to_owned(),
                    serde: field.serde.iter().map(|s| (*s).to_owned()).collect(),
                })
                .collect(),
        }
    }
}

impl Current {
    fn of(registrations: impl Iterator<Item = &'static EventRegistration>) -> Self {
        let mut shapes: BTreeMap<(&'static str, u32), Shape> = BTreeMap::new();
        let mut duplicates: BTreeMap<(&'static str, u32), Vec<String>> = BTreeMap::new();
        for registration in registrations {
            let key = (registration.name, registration.version);
            let shape = Shape::of(registration);
            match shapes.get(&key) {
                Some(first) if first.serde != shape.serde || first.fields != shape.fields => {
                    duplicates
                        .entry(key)
                        .or_insert_with(|| vec![first.rust_type.to_owned()])
                        .push(shape.rust_type.to_owned());
                }
                Some(_) => {}
                None => {
                    shapes.insert(key, shape);
                }
            }
        }
        Current { shapes, duplicates }
    }
}

/// Every field of the catalogue whose type, resolved through aliases, holds a
/// type with interior mutability; by name, version and field. The derive
/// already rejects such a type written out, so what is found here hides
/// behind an alias.
fn interior_mutability(registrations: impl Iterator<Item = &'static EventRegistration>) -> Vec<LockProblem> {
    let mut found = BTreeMap::new();
    for registration in registrations {
        for field in registration.fields {
            let resolved = (field.resolved)();
            let types = factum_rules::immutable_events::found_in(resolved);
            if types.is_empty() {
                continue;
            }
            let key = (registration.name, registration.version, field.name);
            found
                .entry(key)
                .or_insert_with(|| LockProblem::InteriorMutability {
                    name: registration.name.to_owned(),
                    version: registration.version,
                    rust_type: registration.rust_type.to_owned(),
                    field: field.name.to_owned(),
                    written: field.ty.to_owned(),
                    resolved: resolved.to_owned(),
                    found: types.into_iter().map(str::to_owned).collect(),
                });
        }
    }
    found.into_values().collect()
}

/// Every problem of the catalogue against the lock, in name and version order.
fn compare(locked: &[LockedEvent], current: &Current) -> Vec<LockProblem> {
    let mut problems = Vec::new();
    for ((name, version), rust_types) in &current.duplicates {
        problems.push(LockProblem::Duplicate {
            name: (*name).to_owned(),
            version: *version,
            rust_types: rust_types.clone(),
        });
    }

    let mut by_name: BTreeMap<&str, Vec<&LockedEvent>> = BTreeMap::new();
    for event in locked {
        by_name.entry(&event.name).or_default().push(event);
    }
    for (name, mut versions) in by_name {
        versions.sort_by_key(|e| e.version);
        // The version written now, and the versions its upcast chain reaches.
        let Some(((_, newest), shape)) = current.shapes.range((name, 0)..=(name, u32::MAX)).next_back()
        else {
            let last = versions.last().map(|e| e.rust_type.clone()).unwrap_or_default();
            problems.push(LockProblem::Removed {
                name: name.to_owned(),
                versions: versions.iter().map(|e| e.version).collect(),
                rust_type: last,
            });
            continue;
        };
        let mut chain = vec![*newest];
        let mut step = shape.upcast_from;
        while let Some(older) = step.filter(|v| !chain.contains(v)) {
            chain.push(older);
            step = current.shapes.get(&(name, older)).and_then(|s| s.upcast_from);
        }

        for event in versions {
            match current.shapes.get(&(name, event.version)) {
                Some(now) => {
                    let changes = changes(event, now);
                    if !changes.is_empty() {
                        problems.push(LockProblem::ShapeChanged {
                            name: name.to_owned(),
                            version: event.version,
                            rust_type: now.rust_type.to_owned(),
                            changes,
                        });
                    }
                }
                None if event.version > *newest => problems.push(LockProblem::Removed {
                    name: name.to_owned(),
                    versions: vec![event.version],
                    rust_type: event.rust_type.clone(),
                }),
                None => {}
            }
            if !chain.contains(&event.version) && event.version < *newest {
                problems.push(LockProblem::NoUpcastPath {
                    name: name.to_owned(),
                    version: *newest,
                    rust_type: shape.rust_type.to_owned(),
                    missing: event.version,
                    chain: chain.clone(),
                });
            }
        }
    }
    problems
}

/// What changed between a locked shape and the current one, each naming the field.
fn changes(locked: &LockedEvent, now: &Shape) -> Vec<String> {
    let mut changes = Vec::new();
    if locked.serde != now.serde {
        changes.push(format!(
            "its serde attributes changed from {} to {}",
            attrs(&locked.serde),
            attrs(&now.serde)
        ));
    }
    let find = |fields: &[LockedField], name: &str| fields.iter().position(|f| f.name == name);
    let removed: Vec<&LockedField> = locked
        .fields
        .iter()
        .filter(|f| find(&now.fields, &f.name).is_none())
        .collect();
    let added: Vec<&LockedField> = now
        .fields
        .iter()
        .filter(|f| find(&locked.fields, &f.name).is_none())
        .collect();
    if let ([old], [new]) = (removed.as_slice(), added.as_slice()) {
        let retyped = if old.ty == new.ty {
            String::new()
        } else {
            format!(" (and its type from `{}` to `{}`)", old.ty, new.ty)
        };
        changes.push(format!(
            "field `{}` was renamed to `{}`{retyped}",
            old.name, new.name
        ));
    } else {
        for old in removed {
            changes.push(format!("field `{}` (`{}`) was removed", old.name, old.ty));
        }
        for new in added {
            changes.push(format!("field `{}` (`{}`) was added", new.name, new.ty));
        }
    }
    for old in &locked.fields {
        let Some(new) = now.fields.iter().find(|f| f.name == old.name) else {
            continue;
        };
        if old.ty != new.ty {
            changes.push(format!(
                "field `{}` changed type from `{}` to `{}`",
                old.name, old.ty, new.ty
            ));
        }
        if old.serde != new.serde {
            changes.push(format!(
                "field `{}` changed its serde attributes from {} to {}",
                old.name,
                attrs(&old.serde),
                attrs(&new.serde)
            ));
        }
    }
    let kept = |fields: &[LockedField], other: &[LockedField]| -> Vec<String> {
        fields
            .iter()
            .filter(|f| find(other, &f.name).is_some())
            .map(|f| f.name.clone())
            .collect()
    };
    let (before, after) = (
        kept(&locked.fields, &now.fields),
        kept(&now.fields, &locked.fields),
    );
    if before != after {
        changes.push(format!(
            "its fields were reordered from `{}` to `{}` (the order is the encoding in compact codecs)",
            before.join(", "),
            after.join(", ")
        ));
    }
    changes
}

fn attrs(attrs: &[String]) -> String {
    if attrs.is_empty() {
        "none".to_owned()
    } else {
        attrs
            .iter()
            .map(|a| format!("`{a}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
