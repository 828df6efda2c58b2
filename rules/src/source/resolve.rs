//! Name resolution over the crate's own source: a path written in a module
//! becomes its full path, `crate::…` for the crate's own items and the
//! external path (`std::time::SystemTime::now`) for everything else.
//!
//! It follows `use` items (renames, groups, `self`), `crate`, `self` and
//! `super`, modules inline and in files, type aliases to paths, and globs: a
//! glob of one of the crate's modules by what that module declares, a glob of
//! an external module only where it is the only one in scope and the name is
//! none of the prelude's (it cannot know what `std::fs` declares).

use super::load::{Crate, Decl};

/// Names the standard prelude and the primitive types give every module: a
/// glob of an external module never supplies them.
const PRELUDE: &[&str] = &[
    "Some",
    "None",
    "Ok",
    "Err",
    "Option",
    "Result",
    "Vec",
    "String",
    "Box",
    "ToString",
    "ToOwned",
    "Clone",
    "Copy",
    "Default",
    "Drop",
    "Eq",
    "PartialEq",
    "Ord",
    "PartialOrd",
    "Iterator",
    "IntoIterator",
    "Extend",
    "From",
    "Into",
    "TryFrom",
    "TryInto",
    "AsRef",
    "AsMut",
    "Fn",
    "FnMut",
    "FnOnce",
    "Send",
    "Sync",
    "Sized",
    "Unpin",
    "drop",
    "Self",
    "bool",
    "char",
    "str",
    "u8",
    "u16",
    "u32",
    "u64",
    "u128",
    "usize",
    "i8",
    "i16",
    "i32",
    "i64",
    "i128",
    "isize",
    "f32",
    "f64",
    "std",
    "core",
    "alloc",
];

/// Deep enough for any real chain of re-exports; stops a `use` cycle.
const MAX_DEPTH: u32 = 32;

/// The full path `names`, written in `module`, stands for.
pub(super) fn resolve(krate: &Crate, module: usize, names: &[String]) -> Vec<String> {
    resolve_at(krate, module, names, 0)
}

/// Whether `name`, written bare in `module`, is one of the crate's own
/// declarations or imports there (rather than the extern prelude).
pub(super) fn is_known(krate: &Crate, module: usize, name: &str) -> bool {
    is_known_at(krate, module, name, 0)
}

fn is_known_at(krate: &Crate, module: usize, name: &str, depth: u32) -> bool {
    let m = &krate.modules[module];
    m.decls.contains_key(name)
        || m.uses.contains_key(name)
        || local_glob_with(krate, module, name, depth).is_some()
}

fn resolve_at(krate: &Crate, module: usize, names: &[String], depth: u32) -> Vec<String> {
    let Some(first) = names.first() else {
        return Vec::new();
    };
    if depth > MAX_DEPTH {
        return names.to_vec();
    }
    let rest = &names[1..];
    match first.as_str() {
        "crate" => return within(krate, 0, rest, depth),
        "self" => return within(krate, module, rest, depth),
        "super" => {
            let parent = krate.modules[module].parent.unwrap_or(0);
            return resolve_super(krate, parent, rest, depth);
        }
        _ => {}
    }
    if is_known_at(krate, module, first, depth + 1) {
        return within(krate, module, names, depth);
    }
    match single_external_glob(krate, module) {
        Some(mut glob) if !PRELUDE.contains(&first.as_str()) => {
            glob.extend(names.iter().cloned());
            glob
        }
        _ => names.to_vec(),
    }
}

/// `super::…` from `parent`: a further `super` climbs on; anything else is
/// a name inside `parent`.
fn resolve_super(krate: &Crate, parent: usize, rest: &[String], depth: u32) -> Vec<String> {
    match rest.first().map(String::as_str) {
        Some("super") => {
            let grandparent = krate.modules[parent].parent.unwrap_or(0);
            resolve_super(krate, grandparent, &rest[1..], depth + 1)
        }
        _ => within(krate, parent, rest, depth),
    }
}

/// `names` looked up inside `module` itself: its declarations, its `use`
/// items, its globs; an unknown name is still the module's (a missing file,
/// an item behind `cfg`), never an external one.
fn within(krate: &Crate, module: usize, names: &[String], depth: u32) -> Vec<String> {
    let m = &krate.modules[module];
    let Some(first) = names.first() else {
        return m.path.clone();
    };
    let rest = &names[1..];
    let joined = |mut base: Vec<String>| {
        base.extend(rest.iter().cloned());
        base
    };
    match m.decls.get(first) {
        Some(Decl::Mod(child)) => return within(krate, *child, rest, depth + 1),
        Some(Decl::Alias(target)) => return joined(resolve_at(krate, module, target, depth + 1)),
        Some(_) => {
            let mut full = m.path.clone();
            full.extend(names.iter().cloned());
            return full;
        }
        None => {}
    }
    if let Some(target) = m.uses.get(first) {
        return joined(resolve_at(krate, module, target, depth + 1));
    }
    if let Some(source) = local_glob_with(krate, module, first, depth) {
        return within(krate, source, names, depth + 1);
    }
    let mut full = m.path.clone();
    full.extend(names.iter().cloned());
    full
}

/// The crate module a glob of `module` brings `name` in from.
fn local_glob_with(krate: &Crate, module: usize, name: &str, depth: u32) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    krate.modules[module].globs.iter().find_map(|glob| {
        let target = resolve_at(krate, module, glob, depth + 1);
        let source = module_at(krate, &target)?;
        let m = &krate.modules[source];
        let has = m.decls.contains_key(name)
            || m.uses.contains_key(name)
            || local_glob_with(krate, source, name, depth + 1).is_some();
        has.then_some(source)
    })
}

/// The one glob of `module` that names an external module (one written from
/// a crate name: `use std::fs::*;`), if there is exactly one.
fn single_external_glob(krate: &Crate, module: usize) -> Option<Vec<String>> {
    let m = &krate.modules[module];
    let mut external = m.globs.iter().filter(|glob| {
        glob.first().is_some_and(|first| {
            !matches!(first.as_str(), "crate" | "self" | "super")
                && !m.decls.contains_key(first)
                && !m.uses.contains_key(first)
        })
    });
    let glob = external.next()?;
    external.next().is_none().then(|| glob.clone())
}

/// The module whose full path is `path`.
pub(super) fn module_at(krate: &Crate, path: &[String]) -> Option<usize> {
    krate.modules.iter().position(|m| m.path == path)
}
