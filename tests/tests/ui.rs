//! Compile-time checks: each mistake in `tests/ui/{entity,event,view,consumer,workflow}` must fail
//! with the message in its `.stderr`; each shape in `tests/ui/pass` must build.
//! Regenerate the messages with `TRYBUILD=overwrite`, then read them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/entity/*.rs");
    t.compile_fail("ui/event/*.rs");
    t.compile_fail("ui/view/*.rs");
    t.compile_fail("ui/consumer/*.rs");
    t.compile_fail("ui/workflow/*.rs");
    t.pass("ui/pass/*.rs");
}
