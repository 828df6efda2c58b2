//! Builds the PostgreSQL tests to run only where a server is named: with
//! `FACTUM_PG_URL` set at build time they run (and fail if it is unset when
//! they run); without it they are `ignored`, and the test summary counts them.
//! The NATS tests likewise, with `FACTUM_NATS_URL` and cfg `factum_nats`.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(factum_pg)");
    println!("cargo::rerun-if-env-changed=FACTUM_PG_URL");
    if std::env::var("FACTUM_PG_URL").is_ok_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=factum_pg");
    }
    println!("cargo::rustc-check-cfg=cfg(factum_nats)");
    println!("cargo::rerun-if-env-changed=FACTUM_NATS_URL");
    if std::env::var("FACTUM_NATS_URL").is_ok_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=factum_nats");
    }
}
