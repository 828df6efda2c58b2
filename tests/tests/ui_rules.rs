//! The event-sourcing rules at compile time: each forbidden item fails to
//! compile with a message naming the rule and its alternative, and legitimate
//! code that only looks similar compiles.

#[test]
fn ui_rules() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/rules/clock/*.rs");
    t.compile_fail("ui/rules/random/*.rs");
    t.compile_fail("ui/rules/side_effects/*.rs");
    t.compile_fail("ui/rules/failure_names/*.rs");
    t.compile_fail("ui/rules/immutable_events/*.rs");
    t.compile_fail("ui/rules/mixed/*.rs");
    t.compile_fail("ui/rules/helpers/*.rs");
    t.compile_fail("ui/rules/use_in_body/*.rs");
    t.pass("ui/rules/pass/*.rs");
}
