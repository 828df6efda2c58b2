//! The event lock keeps rule 1 ("never modify an event") across releases:
//! given a lock written by the last release, when an event's shape changed
//! under the same name and version, then the check fails naming the event and
//! the field; a correct version bump with `upcast_from` passes.
//!
//! Each test's lock holds only its own events: the others of this binary are
//! new to it, which passes.
#![allow(missing_docs)] // a test crate: its `pub` items are fixtures, not an API

use std::path::PathBuf;

use factum::testkit::{check_event_lock, update_event_lock};
use factum::{Event, Timestamp};
use serde::{Deserialize, Serialize};

// ---- this release's events --------------------------------------------------

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "lock.retyped")]
pub struct Retyped {
    pub amount: u64,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "lock.renamed")]
pub struct Renamed {
    pub holder: String,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "lock.grown")]
pub struct Grown {
    pub amount: u64,
    pub currency: String,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "lock.defaulted")]
pub struct Defaulted {
    pub amount: u64,
    pub note: String,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "lock.bumped")]
pub struct BumpedV1 {
    pub amount: u32,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "lock.bumped", version = 2, upcast_from = BumpedV1)]
pub struct Bumped {
    pub amount: u64,
    #[serde(default)]
    pub at: Option<Timestamp>,
}

impl From<BumpedV1> for Bumped {
    fn from(v1: BumpedV1) -> Self {
        Bumped {
            amount: v1.amount.into(),
            at: None,
        }
    }
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "lock.unlinked", version = 2)]
pub struct Unlinked {
    pub amount: u64,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "lock.reordered")]
pub struct Reordered {
    pub b: u8,
    pub a: u8,
}

// ---- the lock of the last release ---------------------------------------------

/// A lock file holding `events` (JSON objects), in a directory of its own.
struct Lock {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn lock(events: &[&str]) -> Lock {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.lock.json");
    let text = format!("{{ \"events\": [{}] }}", events.join(", "));
    std::fs::write(&path, text).expect("lock written");
    Lock { _dir: dir, path }
}

fn report(lock: &Lock) -> String {
    let err = check_event_lock(&lock.path).expect_err("the lock does not hold");
    err.to_string()
}

fn header(lock: &Lock) -> String {
    format!(
        "the events of this program do not match the event lock {} (rule: never modify an event):",
        lock.path.display()
    )
}

/// The advice every shape change ends with, for `Type` at `version`.
fn bump(name: &str, rust_type: &str, version: u32) -> String {
    format!(
        "Events stored as version {version} have the old shape. Keep it as a type of its own \
         (`{rust_type}V{version}`, with `#[event(name = \"{name}\", version = {version})]`), and bump \
         this one: `#[event(version = {next}, upcast_from = {rust_type}V{version})]` with \
         `From<{rust_type}V{version}>`",
        next = version + 1
    )
}

#[test]
fn a_changed_field_type_fails_naming_the_event_and_the_field() {
    let lock = lock(&[
        r#"{ "name": "lock.retyped", "version": 1, "rust_type": "Retyped", "fields": [{ "name": "amount", "type": "u32" }] }"#,
    ]);
    assert_eq!(
        report(&lock),
        format!(
            "{}\n- `lock.retyped` v1 (`Retyped`) changed its shape: field `amount` changed type from `u32` \
             to `u64`. {}",
            header(&lock),
            bump("lock.retyped", "Retyped", 1)
        )
    );
}

#[test]
fn a_renamed_field_fails_naming_both_names() {
    let lock = lock(&[
        r#"{ "name": "lock.renamed", "version": 1, "rust_type": "Renamed", "fields": [{ "name": "owner", "type": "String" }] }"#,
    ]);
    assert_eq!(
        report(&lock),
        format!(
            "{}\n- `lock.renamed` v1 (`Renamed`) changed its shape: field `owner` was renamed to `holder`. {}",
            header(&lock),
            bump("lock.renamed", "Renamed", 1)
        )
    );
}

#[test]
fn a_field_added_without_a_version_bump_fails() {
    let lock = lock(&[
        r#"{ "name": "lock.grown", "version": 1, "rust_type": "Grown", "fields": [{ "name": "amount", "type": "u64" }] }"#,
    ]);
    assert_eq!(
        report(&lock),
        format!(
            "{}\n- `lock.grown` v1 (`Grown`) changed its shape: field `currency` (`String`) was added. {}",
            header(&lock),
            bump("lock.grown", "Grown", 1)
        )
    );
}

#[test]
fn a_removed_serde_default_fails_naming_the_field() {
    let lock = lock(&[
        r#"{ "name": "lock.defaulted", "version": 1, "rust_type": "Defaulted", "fields": [
            { "name": "amount", "type": "u64" },
            { "name": "note", "type": "String", "serde": ["default"] }
        ] }"#,
    ]);
    assert_eq!(
        report(&lock),
        format!(
            "{}\n- `lock.defaulted` v1 (`Defaulted`) changed its shape: field `note` changed its serde \
             attributes from `default` to none. {}",
            header(&lock),
            bump("lock.defaulted", "Defaulted", 1)
        )
    );
}

#[test]
fn reordered_fields_fail_since_compact_codecs_encode_by_position() {
    let lock = lock(&[
        r#"{ "name": "lock.reordered", "version": 1, "rust_type": "Reordered", "fields": [
            { "name": "a", "type": "u8" }, { "name": "b", "type": "u8" }
        ] }"#,
    ]);
    assert_eq!(
        report(&lock),
        format!(
            "{}\n- `lock.reordered` v1 (`Reordered`) changed its shape: its fields were reordered from `a, b` \
             to `b, a` (the order is the encoding in compact codecs). {}",
            header(&lock),
            bump("lock.reordered", "Reordered", 1)
        )
    );
}

#[test]
fn a_version_bump_with_upcast_from_passes() {
    // The last release wrote version 1; this one keeps it as `BumpedV1` and
    // writes version 2, which upcasts from it.
    let lock = lock(&[
        r#"{ "name": "lock.bumped", "version": 1, "rust_type": "Bumped", "fields": [{ "name": "amount", "type": "u32" }] }"#,
    ]);
    check_event_lock(&lock.path).expect("the bump keeps every stored version loadable");
}

#[test]
fn a_new_version_with_no_upcast_path_from_the_last_one_fails() {
    let lock = lock(&[
        r#"{ "name": "lock.unlinked", "version": 1, "rust_type": "Unlinked", "fields": [{ "name": "amount", "type": "u32" }] }"#,
    ]);
    assert_eq!(
        report(&lock),
        format!(
            "{}\n- `lock.unlinked` v2 (`Unlinked`) cannot load stored version 1: the lock holds version 1, \
             and the `upcast_from` chain of version 2 is 2. Keep version 1 as its own type and reach it \
             with `#[event(upcast_from = …)]`",
            header(&lock)
        )
    );
}

#[test]
fn a_removed_event_type_still_in_the_lock_is_reported() {
    let lock = lock(&[
        r#"{ "name": "lock.gone", "version": 1, "rust_type": "Gone", "fields": [{ "name": "reason", "type": "String" }] }"#,
    ]);
    assert_eq!(
        report(&lock),
        format!(
            "{}\n- `lock.gone` (`Gone`, version 1 in the lock) is no longer an event of this program: its \
             stored events will not load. Keep the type, or, if no store holds an event of it, drop it \
             from the lock with FACTUM_UPDATE_LOCK=1",
            header(&lock)
        )
    );
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let lock = lock(&[
        r#"{ "name": "lock.retyped", "version": 1, "rust_type": "Retyped", "fields": [{ "name": "amount", "type": "u32" }] }"#,
        r#"{ "name": "lock.gone", "version": 1, "rust_type": "Gone", "fields": [] }"#,
    ]);
    let report = report(&lock);
    let events: Vec<&str> = report
        .lines()
        .skip(1)
        .map(|line| line.split(' ').nth(1).unwrap_or_default())
        .collect();
    assert_eq!(events, ["`lock.gone`", "`lock.retyped`"]);
}

#[test]
fn an_updated_lock_records_every_event_one_line_per_field_and_then_holds() {
    let lock = lock(&[]);
    update_event_lock(&lock.path).expect("lock written");
    let text = std::fs::read_to_string(&lock.path).expect("lock read");
    assert!(
        text.contains(
            r#"    {
      "name": "lock.bumped",
      "version": 2,
      "rust_type": "Bumped",
      "fields": [
        { "name": "amount", "type": "u64" },
        { "name": "at", "type": "Option<Timestamp>", "serde": ["default"] }
      ]
    }"#
        ),
        "{text}"
    );
    let names: Vec<&str> = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("\"name\": \"lock."))
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by name");
    check_event_lock(&lock.path).expect("a freshly written lock holds");
}

#[test]
fn a_missing_lock_says_how_to_write_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.lock.json");
    let err = check_event_lock(&path).expect_err("no lock yet");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read the event lock {}: ", path.display())),
        "{err}"
    );
    assert!(
        err.to_string()
            .ends_with("Write it with FACTUM_UPDATE_LOCK=1 and commit it"),
        "{err}"
    );
}
