//! Given / when / then for entities (being written).
