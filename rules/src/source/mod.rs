//! The crate-wide check: reads a crate's source, resolves its names, and
//! follows every handler through the crate's own code, with the same tables
//! the compile-time check uses.
//!
//! Where the macro sees one impl block, this sees the crate: module-level
//! `use` items, type aliases, free functions in any module or file, methods
//! in any impl block of the crate's types. It reads the crate roots
//! `src/lib.rs`, `src/main.rs`, `src/bin/*.rs`, `tests/*.rs` and
//! `examples/*.rs`, each with the modules it declares.
//!
//! It still cannot see: calls through trait objects and generic bounds, or
//! methods on a value whose type only type checking knows (`clock.now()`);
//! other crates' code (a dependency's helper that reads the clock); macro
//! expansions; `cfg` (every module is read, whatever is enabled); bindings in
//! closures, `match` arms and `for` loops shadowing a glob-imported name. The
//! test kit's replay check stays the last line.

mod load;
mod resolve;
mod walk;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};

use self::load::Crate;
use self::walk::{Body, walk};
use crate::At;

/// Checks every `#[handle]`, `#[apply]` and view `#[on]` of the crate in
/// `dir` (its `CARGO_MANIFEST_DIR`), and every function and method of the
/// crate they reach, against the rules.
///
/// Users call it as `factum::rules::check_crate`, from a test:
///
/// ```no_run
/// #[test]
/// fn rules() {
///     factum_rules::source::check_crate(env!("CARGO_MANIFEST_DIR")).unwrap()
/// }
/// ```
pub fn check_crate(dir: impl AsRef<Path>) -> Result<(), RuleViolations> {
    let dir = dir.as_ref();
    let mut violations = Vec::new();
    for root in crate_roots(dir) {
        let krate = Crate::load(dir, &root);
        for (file, error) in &krate.unread {
            violations.push(RuleViolation {
                file: file.clone(),
                line: 0,
                column: 0,
                message: format!("not read, so not checked: {error}"),
            });
        }
        check(&krate, &mut violations);
    }
    violations.sort();
    violations.dedup();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(RuleViolations { violations })
    }
}

/// Every rule violation `check_crate` found, each with its place and the
/// chain of calls from the handler that reaches it.
#[derive(Clone, PartialEq, Eq)]
pub struct RuleViolations {
    /// By file, line and column.
    pub violations: Vec<RuleViolation>,
}

/// One violation: where, and the rule's message (what, the chain, the rule,
/// what to write instead).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuleViolation {
    /// The file, relative to the crate's directory.
    pub file: PathBuf,
    /// 1-based; 0 for a file that could not be read.
    pub line: usize,
    /// 1-based; 0 for a file that could not be read.
    pub column: usize,
    /// The message the compile-time check gives for the same code.
    pub message: String,
}

impl fmt::Display for RuleViolations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the crate breaks the event-sourcing rules:")?;
        for violation in &self.violations {
            write!(f, "\n{violation}")?;
        }
        Ok(())
    }
}

/// `unwrap()` in a test prints the report, not a struct dump.
impl fmt::Debug for RuleViolations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for RuleViolations {}

impl fmt::Display for RuleViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.to_string_lossy().replace('\\', "/");
        write!(f, "{file}:{}:{}: {}", self.line, self.column, self.message)
    }
}

/// The crate roots under `dir` that exist, relative to it, in a fixed order.
fn crate_roots(dir: &Path) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = ["src/lib.rs", "src/main.rs"]
        .iter()
        .map(PathBuf::from)
        .filter(|root| dir.join(root).is_file())
        .collect();
    for folder in ["src/bin", "tests", "examples"] {
        let Ok(entries) = std::fs::read_dir(dir.join(folder)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter_map(|path| {
                if path.extension().is_some_and(|ext| ext == "rs") {
                    Some(PathBuf::from(folder).join(path.file_name()?))
                } else if path.join("main.rs").is_file() {
                    Some(PathBuf::from(folder).join(path.file_name()?).join("main.rs"))
                } else {
                    None
                }
            })
            .collect();
        files.sort();
        roots.extend(files);
    }
    roots
}

/// Judges every root's body and every function and method it reaches,
/// breadth first (the shortest chain), each once per root.
fn check(krate: &Crate, violations: &mut Vec<RuleViolation>) {
    let mut walked: HashMap<Vec<String>, Body> = HashMap::new();
    for root in &krate.roots {
        // (key, the chain to it, the file its body is in)
        let mut queue: VecDeque<(Vec<String>, Vec<String>)> = VecDeque::new();
        queue.push_back((root.key.clone(), vec![root.def.name.clone()]));
        let mut followed = HashSet::new();
        while let Some((key, chain)) = queue.pop_front() {
            if !followed.insert(key.clone()) {
                continue;
            }
            let is_root = key == root.key;
            let same_site_root = !is_root && krate.roots.iter().any(|r| r.key == key && r.site == root.site);
            let def = krate.fns.get(&key).or_else(|| krate.methods.get(&key));
            let Some(def) = def.filter(|_| !same_site_root) else {
                continue;
            };
            let body = walked.entry(key.clone()).or_insert_with(|| walk(krate, def));
            let file = &krate.modules[def.module].file;
            let helpers: &[String] = if is_root { &[] } else { &chain };
            for found in &body.found {
                let at = At {
                    site: root.site,
                    chain: helpers,
                    written: found.written.as_deref(),
                    called: found.called,
                };
                let start = found.span.start();
                for message in crate::judge(&found.seen, &at) {
                    violations.push(RuleViolation {
                        file: file.clone(),
                        line: start.line,
                        column: start.column + 1,
                        message,
                    });
                }
            }
            for call in &body.calls {
                let mut chain = chain.clone();
                chain.push(call.link.clone());
                queue.push_back((call.key.clone(), chain));
            }
        }
    }
}
