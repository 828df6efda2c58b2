//! The factum command line over the example domains (bank, cart): audit
//! trail, time travel, what-if and view rebuilds.
//!
//! `cargo run -p factum-examples --bin factum -- --db bank.db history account acc-ada`
//! (`--help` lists the commands).

// Links the domains, so the registries the CLI reads hold their entities,
// events and views.
use factum_examples as _;

fn main() -> std::process::ExitCode {
    factum_cli::run()
}
