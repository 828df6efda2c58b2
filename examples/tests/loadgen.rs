//! loadgen on a pre-filled SQLite file: one fill serves several runs, each
//! run's check passes over the filled log, a kept file is refused without
//! `--reuse` or with the wrong `--prefill-streams`, and the view catch-up
//! runs over it. Nothing here is timed: the runs last a fraction of a second
//! and only their outcome and report line are checked.

use std::process::Command;

/// Runs loadgen; returns (success, stdout, stderr).
fn loadgen(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .expect("run the loadgen binary");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The value of `key=` on loadgen's report line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|pair| pair.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

#[test]
fn one_fill_serves_several_checked_runs() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("filled.db");
    let path = file.to_str().expect("a UTF-8 temp path");

    let (ok, _, err) = loadgen(&[
        "--fill-only",
        "--store",
        "sqlite",
        "--path",
        path,
        "--prefill-events",
        "2005",
        "--prefill-streams",
        "300",
    ]);
    assert!(ok, "the fill failed:\n{err}");
    assert!(err.contains("holds 2005 events"), "{err}");

    let run = [
        "--store",
        "sqlite",
        "--writers",
        "4",
        "--entities",
        "30",
        "--seconds",
        "0.3",
        "--cold-loads",
        "20",
        "--path",
        path,
        "--reuse",
        "--prefill-streams",
        "300",
    ];
    let mut stored = 0;
    for _ in 0..2 {
        let (ok, out, err) = loadgen(&run);
        assert!(ok, "a run on the filled file failed:\n{out}\n{err}");
        assert!(err.contains("check passed"), "{err}");
        assert_eq!(field(&out, "streams"), "300");
        assert_eq!(field(&out, "cold_loads"), "20");
        let before: u64 = field(&out, "stored").parse().expect("stored is a number");
        let events: u64 = field(&out, "events").parse().expect("events is a number");
        assert!(events > 0, "the run committed nothing: {out}");
        // The second run starts where the first left the file.
        if stored > 0 {
            assert_eq!(before, stored);
        } else {
            assert_eq!(before, 2005);
        }
        stored = before + events;
    }

    // A kept file is refused without --reuse, and with streams it was not filled with.
    let mut without: Vec<&str> = run.iter().copied().filter(|a| *a != "--reuse").collect();
    let (ok, _, err) = loadgen(&without);
    assert!(!ok && err.contains("go together"), "{err}");
    without.extend(["--prefill-events", "2005"]);
    let (ok, _, err) = loadgen(&without);
    assert!(!ok && err.contains("the file exists; give --reuse"), "{err}");
    let mut wrong = run.to_vec();
    let last = wrong.len() - 1;
    wrong[last] = "299";
    let (ok, _, err) = loadgen(&wrong);
    assert!(
        !ok && err.contains("not filled with --prefill-streams 299"),
        "{err}"
    );

    let (ok, out, err) = loadgen(&[
        "--catch-up",
        "--store",
        "sqlite",
        "--path",
        path,
        "--prefill-streams",
        "300",
    ]);
    assert!(ok, "the catch-up failed:\n{out}\n{err}");
    assert_eq!(field(&out, "events"), stored.to_string());
    assert!(err.contains("100 sampled view rows match"), "{err}");
    // The catch-up's view file is removed, the events file kept.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list the temp dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|name| name.contains("catch-up"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(file.exists());
}

#[test]
fn prefill_arguments_are_checked() {
    let (ok, _, err) = loadgen(&[
        "--store",
        "sqlite",
        "--writers",
        "1",
        "--entities",
        "10",
        "--seconds",
        "1",
        "--prefill-events",
        "5",
        "--prefill-streams",
        "10",
    ]);
    assert!(
        !ok && err.contains("--prefill-events 5 is fewer than --prefill-streams 10"),
        "{err}"
    );
    let (ok, _, err) = loadgen(&[
        "--store",
        "sqlite",
        "--writers",
        "1",
        "--entities",
        "11",
        "--seconds",
        "1",
        "--prefill-events",
        "100",
        "--prefill-streams",
        "10",
    ]);
    assert!(
        !ok && err.contains("--entities 11 is more than --prefill-streams 10"),
        "{err}"
    );
    let (ok, _, err) = loadgen(&[
        "--fill-only",
        "--store",
        "sqlite",
        "--prefill-events",
        "10",
        "--prefill-streams",
        "10",
    ]);
    assert!(!ok && err.contains("--fill-only"), "{err}");
}
