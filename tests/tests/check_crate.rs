//! `factum::rules::check_crate` follows handlers through the crate's own
//! source: given a fixture crate that hides a violation behind a
//! module-level form, the report names each violation's file, line and
//! column, the rule and the chain of calls; the crate's own items named like
//! forbidden ones pass, and so do this crate and the examples.
#![allow(missing_docs)] // a test crate

use std::path::PathBuf;

use factum::rules::check_crate;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/check_crate")
        .join(name)
}

fn report(name: &str) -> String {
    check_crate(fixture(name))
        .expect_err("the fixture breaks a rule")
        .to_string()
}

const HEADER: &str = "the crate breaks the event-sourcing rules:";
const CLOCK: &str =
    "event-sourced state must not depend on when it is replayed (rule: never read the wall clock).";
const RANDOM: &str = "replaying the same events must rebuild the same state (rule: never use random numbers to produce state).";
const FOLDED: &str = "an event is folded again on every replay, so the effect would repeat (rule: never produce \
                      side effects when processing events). Side effects belong in the code that sends the \
                      command: read inputs before `send` and put them in the command, and act on the outcome \
                      after `send` returns.";

#[test]
fn a_module_level_use_alias_and_a_type_alias_are_read_through() {
    assert_eq!(
        report("alias"),
        format!(
            "{HEADER}\n\
             src/lib.rs:10:17: `Clock::now` (`std::time::SystemTime::now`) reads the wall clock in a #[handle] \
             body; {CLOCK} Use `ctx.now()` instead.\n\
             src/lib.rs:16:19: `Wall::now` (`std::time::Instant::now`) reads the wall clock in an #[apply] body; \
             {CLOCK} The time must come from the event: record `ctx.now()` in it in #[handle]."
        )
    );
}

#[test]
fn free_helpers_in_another_file_and_methods_of_another_impl_are_followed() {
    assert_eq!(
        report("helper_in_another_file"),
        format!(
            "{HEADER}\n\
             src/account.rs:5:9: `std::env::var` reads the process environment in a helper of an #[apply] body \
             (`Account::opened → self.offset() → std::env::var()`); {FOLDED}\n\
             src/stamps.rs:6:5: `std::time::SystemTime::now` reads the wall clock in a helper of a #[handle] body \
             (`Account::open → stamp() → seconds() → std::time::SystemTime::now()`); {CLOCK} Use `ctx.now()` \
             instead.\n\
             src/stamps.rs:10:5: `rand::random` draws random numbers in a helper of a #[handle] body \
             (`Account::open → stamps::roll() → rand::random()`); {RANDOM} Use `ctx.random_u64()` or \
             `ctx.uuid()` instead: they are seeded from the command id."
        )
    );
}

#[test]
fn use_std_fs_at_module_level_is_read_through_where_events_are_folded() {
    // The #[handle] reads a file through the same `fs`: allowed there.
    assert_eq!(
        report("module_use_fs"),
        format!(
            "{HEADER}\n\
             src/lib.rs:14:17: `fs::write` (`std::fs::write`) touches the file system in an #[apply] body; {FOLDED}"
        )
    );
}

#[test]
fn super_paths_reach_helpers_in_parent_modules() {
    assert_eq!(
        report("super_paths"),
        format!(
            "{HEADER}\n\
             src/bank/mod.rs:4:5: `println!` prints in a helper of an #[apply] body (`Account::opened → \
             super::audit() → println!`); {FOLDED}\n\
             src/clock.rs:4:5: `SystemTime::now` (`std::time::SystemTime::now`) reads the wall clock in a helper \
             of an #[apply] body (`Account::opened → super::super::clock::now_secs() → SystemTime::now()`); \
             {CLOCK} The time must come from the event: record `ctx.now()` in it in #[handle]."
        )
    );
}

#[test]
fn glob_imports_of_a_crate_module_and_of_std_fs_are_read_through() {
    // `Some(…)` after `use std::fs::*;` is the prelude's, not `std::fs::Some`.
    assert_eq!(
        report("glob_import"),
        format!(
            "{HEADER}\n\
             src/util.rs:2:5: `uuid::Uuid::new_v4` draws random numbers in a helper of a #[handle] body \
             (`Account::open → fresh_id() → uuid::Uuid::new_v4()`); {RANDOM} Use `ctx.random_u64()` or \
             `ctx.uuid()` instead: they are seeded from the command id.\n\
             src/views.rs:8:17: `write` (`std::fs::write`) touches the file system in a view's #[on] body; {FOLDED}"
        )
    );
}

#[test]
fn the_crates_own_items_named_like_forbidden_ones_pass() {
    check_crate(fixture("own_items")).unwrap();
}

#[test]
fn this_crate_keeps_the_rules() {
    check_crate(env!("CARGO_MANIFEST_DIR")).unwrap();
}
