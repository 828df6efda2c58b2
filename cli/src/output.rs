//! How results are written: aligned tables for people, JSON for scripts,
//! and a progress bar on stderr for scans that take more than a second.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use factum::audit::OnProgress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// Where a command writes, and whether as JSON.
pub struct Output {
    json: bool,
    sink: Mutex<Box<dyn Write + Send>>,
}

impl Output {
    /// Standard output.
    pub fn stdout(json: bool) -> Self {
        Output {
            json,
            sink: Mutex::new(Box::new(std::io::BufWriter::new(std::io::stdout()))),
        }
    }

    /// A shared buffer (tests and embedding read it after the command).
    pub fn buffer(json: bool) -> (Self, Arc<Mutex<Vec<u8>>>) {
        let shared = Arc::new(Mutex::new(Vec::new()));
        let out = Output {
            json,
            sink: Mutex::new(Box::new(Shared(shared.clone()))),
        };
        (out, shared)
    }

    /// True when the command should print JSON.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Writes `text` as is.
    pub fn write(&self, text: &str) -> std::io::Result<()> {
        self.sink
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(text.as_bytes())
    }

    /// Writes one line.
    pub fn line(&self, text: impl AsRef<str>) -> std::io::Result<()> {
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        sink.write_all(text.as_ref().as_bytes())?;
        sink.write_all(b"\n")
    }

    /// Writes `value` as pretty JSON and a newline.
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), crate::CliError> {
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        serde_json::to_writer_pretty(&mut *sink, value)?;
        sink.write_all(b"\n")?;
        Ok(())
    }

    /// Writes `value` as one line of JSON (for streamed output).
    pub fn json_line<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), crate::CliError> {
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        serde_json::to_writer(&mut *sink, value)?;
        sink.write_all(b"\n")?;
        Ok(())
    }

    /// Flushes what was written.
    pub fn flush(&self) -> std::io::Result<()> {
        self.sink.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A table whose columns are as wide as their widest cell.
pub struct Table {
    headers: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers; a header starting with `>` is right-aligned (numbers).
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers
                .iter()
                .map(|h| h.trim_start_matches('>').to_owned())
                .collect(),
            right: headers.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// True when no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The widths of each column.
    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        widths
    }

    /// Writes the header and the rows, with `indent` before each line.
    pub fn print(&self, out: &Output, indent: &str) -> std::io::Result<()> {
        let widths = self.widths();
        out.line(format!("{indent}{}", self.format(&self.headers, &widths)))?;
        for row in &self.rows {
            out.line(format!("{indent}{}", self.format(row, &widths)))?;
        }
        Ok(())
    }

    fn format(&self, cells: &[String], widths: &[usize]) -> String {
        let last = cells.len().saturating_sub(1);
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let width = widths.get(i).copied().unwrap_or(0);
            let pad = width.saturating_sub(cell.chars().count());
            if self.right.get(i).copied().unwrap_or(false) {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else if i == last {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
        }
        line
    }
}

/// A progress bar on stderr that appears only once a scan has run for a
/// second (short commands stay quiet), and never when stderr is not a terminal.
pub struct Progress {
    bar: ProgressBar,
    started: Instant,
    shown: Arc<AtomicBool>,
}

/// How long a scan runs before its bar appears.
const SHOW_AFTER: Duration = Duration::from_secs(1);

impl Progress {
    /// A hidden bar labelled `label`.
    pub fn new(label: &str) -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_owned());
        Progress {
            bar,
            started: Instant::now(),
            shown: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Moves the bar to `done` of `total`.
    pub fn set(&self, done: u64, total: u64) {
        update(&self.bar, self.started, &self.shown, done, total);
    }

    /// The callback `factum::audit` reports to.
    pub fn callback(&self) -> OnProgress {
        let (bar, started, shown) = (self.bar.clone(), self.started, self.shown.clone());
        Arc::new(move |done, total| update(&bar, started, &shown, done, total))
    }
}

fn update(bar: &ProgressBar, started: Instant, shown: &AtomicBool, done: u64, total: u64) {
    bar.set_length(total);
    bar.set_position(done);
    if !shown.load(Ordering::Relaxed) && started.elapsed() >= SHOW_AFTER {
        shown.store(true, Ordering::Relaxed);
        bar.set_draw_target(ProgressDrawTarget::stderr());
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// The first eight hex digits of an id, for tables (JSON has the whole id).
pub fn short(id: &factum::Uuid) -> String {
    id.simple().to_string()[..8].to_owned()
}
