//! Rule: never modify an event.
//!
//! Flags a type with interior mutability anywhere in an event's field type,
//! by name: the derive judges the type as written (`Vec<Cell<u8>>`), the
//! event lock judges what it resolves to (through a `type` alias).

/// Types whose value can change behind a shared reference, by name.
const INTERIOR_MUTABILITY: &[&str] = &[
    "Cell",
    "RefCell",
    "UnsafeCell",
    "OnceCell",
    "OnceLock",
    "LazyCell",
    "LazyLock",
    "Mutex",
    "RwLock",
    "Atomic",
];

/// Never modify an event: events are immutable facts, and handlers receive
/// them as `&E` so no code can change one once it is recorded. A field that
/// can change behind `&` (a cell, lock or atomic) would let a fold alter the
/// fact, and replay would then see something other than what was recorded.
/// Judges one type name: the table above, and every `Atomic*` type.
pub fn judge(type_name: &str) -> bool {
    INTERIOR_MUTABILITY.contains(&type_name)
        || type_name
            .strip_prefix("Atomic")
            .and_then(|rest| rest.chars().next())
            .is_some_and(char::is_uppercase)
}

/// The interior-mutable type names in a type written out as text
/// (`alloc::sync::Arc<std::sync::OnceLock<u64>>` gives `["OnceLock"]`), in order.
pub fn found_in(type_text: &str) -> Vec<&str> {
    type_text
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|name| judge(name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{found_in, judge};

    #[test]
    fn cells_locks_and_atomics_are_interior_mutable_and_look_alikes_are_not() {
        for name in ["Cell", "RefCell", "Mutex", "OnceLock", "AtomicU64", "AtomicBool"] {
            assert!(judge(name), "{name}");
        }
        for name in ["Cells", "Atomicity", "Atomic_", "MutexGuardian", "Arc", "u64"] {
            assert!(!judge(name), "{name}");
        }
    }

    #[test]
    fn a_resolved_type_name_is_searched_segment_by_segment() {
        assert_eq!(
            found_in("alloc::sync::Arc<std::sync::once_lock::OnceLock<u64>>"),
            ["OnceLock"]
        );
        assert_eq!(
            found_in("core::cell::Cell<core::sync::atomic::AtomicU8>"),
            ["Cell", "AtomicU8"]
        );
        assert!(found_in("alloc::vec::Vec<alloc::string::String>").is_empty());
        // Module names are lowercase: `core::cell::…` is not itself a type.
        assert!(found_in("my::cell::Counter").is_empty());
    }
}
