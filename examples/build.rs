//! Builds the PostgreSQL test of the `factum` binary to run only where a
//! server is named (as in `tests/build.rs`): with `FACTUM_PG_URL` set at build
//! time it runs; without it, it is `ignored`.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(factum_pg)");
    println!("cargo::rerun-if-env-changed=FACTUM_PG_URL");
    if std::env::var("FACTUM_PG_URL").is_ok_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=factum_pg");
    }
}
