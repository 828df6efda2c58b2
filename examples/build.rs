//! Builds the PostgreSQL test of the `factum` binary to run only where a
//! server is named (as in `tests/build.rs`): with `FACTUM_PG_URL` set at build
//! time it runs; without it, it is `ignored`. Likewise the chess browser test
//! runs where Debian's chromium and chromium-driver are installed (`.ci/run`
//! installs them), and shows as `ignored` where they are not.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(factum_pg)");
    println!("cargo::rerun-if-env-changed=FACTUM_PG_URL");
    if std::env::var("FACTUM_PG_URL").is_ok_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=factum_pg");
    }
    println!("cargo::rustc-check-cfg=cfg(factum_chromedriver)");
    println!("cargo::rustc-check-cfg=cfg(factum_nats)");
    println!("cargo::rerun-if-env-changed=FACTUM_NATS_URL");
    if std::env::var("FACTUM_NATS_URL").is_ok_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=factum_nats");
    }
    for tool in ["/usr/bin/chromedriver", "/usr/bin/chromium"] {
        println!("cargo::rerun-if-changed={tool}");
    }
    if std::path::Path::new("/usr/bin/chromedriver").exists()
        && std::path::Path::new("/usr/bin/chromium").exists()
    {
        println!("cargo::rustc-cfg=factum_chromedriver");
    }
}
