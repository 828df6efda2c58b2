//! Code generation: from a checked model to tokens.
//!
//! Generated code names everything by absolute path (`::core::…`,
//! `::factum::…`) so a user's own `Result` or `Vec` cannot capture it, and
//! puts its impls inside `const _: () = { … };` so its helpers stay private.

pub(crate) mod entity;
pub(crate) mod event;
