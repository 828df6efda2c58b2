//! Child processes of the crash tests, killed at a fault point
//! (`factum::fault`): run one to its end, then check that it ended where the
//! test meant it to — it announced the hit and died of the abort.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};

use factum::fault::{Action, ENV, announcement};

/// `SIGABRT` on Linux: what `std::process::abort` ends a process with.
const SIGABRT: i32 = 6;

/// How a child process ended, and what it printed.
#[derive(Debug)]
pub struct Ended {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its stdout, by line.
    pub stdout: Vec<String>,
    /// Its stderr, by line.
    pub stderr: Vec<String>,
}

/// Runs `command` with `FACTUM_FAULT` set to `rule` until it ends.
pub fn run_with_fault(command: &mut Command, rule: &str) -> Ended {
    let out = command.env(ENV, rule).output().expect("run the child");
    let lines = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    Ended {
        status: out.status,
        stdout: lines(&out.stdout),
        stderr: lines(&out.stderr),
    }
}

impl Ended {
    /// Asserts that the child announced the `hit`-th hit of `point` and then
    /// died of the abort there: the kill landed where the test meant it to.
    pub fn assert_aborted_at(&self, point: &str, hit: u64) {
        let announced = announcement(point, hit, Action::Abort);
        assert!(
            self.stderr.contains(&announced),
            "the child did not announce `{announced}`: it ended with {} (stdout {:?}, stderr {:?})",
            self.status,
            self.stdout,
            self.stderr
        );
        assert_eq!(
            self.status.signal(),
            Some(SIGABRT),
            "the child announced `{announced}` but did not die of the abort: {} (stderr {:?})",
            self.status,
            self.stderr
        );
    }
}
