//! The examples keep the event-sourcing rules through all of their own code,
//! not only in the handler bodies the macros see.

#[test]
fn rules() {
    factum::rules::check_crate(env!("CARGO_MANIFEST_DIR")).unwrap()
}
