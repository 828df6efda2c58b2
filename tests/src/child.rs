//! Child processes of the crash tests, killed at a fault point
//! (`factum::fault`): run one to its end, then check that it ended where the
//! test meant it to — it announced the hit and died of the abort.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use factum::fault::{Action, ENV, announcement};

/// `SIGABRT` on Linux: what `std::process::abort` ends a process with.
const SIGABRT: i32 = 6;

/// Longer than any child takes: only a hang reaches it (a guard, not a timing assertion).
const HANG: Duration = Duration::from_secs(300);

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

/// Reads all of `from` on a thread of its own, so neither pipe can fill and block the child.
fn drain(mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    })
}

/// Runs `command` with `FACTUM_FAULT` set to `rule` until it ends. A child
/// still running after five minutes (it never reached its point: another
/// process holding the view's lease, say) is killed and the test fails.
pub fn run_with_fault(command: &mut Command, rule: &str) -> Ended {
    let mut child = command
        .env(ENV, rule)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + HANG;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = stderr.join().unwrap_or_default();
            panic!("the child with {ENV}={rule} still ran after {HANG:?}; stderr: {stderr:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ended {
        status,
        stdout: stdout.join().expect("read stdout"),
        stderr: stderr.join().expect("read stderr"),
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
