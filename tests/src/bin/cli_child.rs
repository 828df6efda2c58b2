//! The `factum` command line over the test views (`test_tally`, …), with
//! the fault points compiled in: the audit crash test kills it mid-rebuild.
//!
//! `cli_child --db <file> rebuild-view test_tally --batch 200` and the like;
//! `FACTUM_FAULT` arms fault points (`factum::fault`).

// Links the test views, so the command line's registries see them.
use factum_tests as _;

fn main() -> std::process::ExitCode {
    factum_cli::run()
}
