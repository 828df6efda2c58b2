//! Code generation: from a checked model to tokens.
//!
//! Generated code names everything by absolute path (`::core::…`,
//! `::factum::…`) so a user's own `Result` or `Vec` cannot capture it, and
//! puts its impls inside `const _: () = { … };` so its helpers stay private.

pub(crate) mod audit;
pub(crate) mod consumer;
pub(crate) mod entity;
pub(crate) mod event;
pub(crate) mod view;
pub(crate) mod workflow;

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{Attribute, ImplItem, Item, ItemImpl};

/// What an attribute macro on an impl block emits: with a sound structure,
/// the rule errors beside the full expansion (so a rule error does not cascade
/// into "type not found"); after a structure error, that error, the rule
/// errors and a fallback (the user's item plus stubs).
pub(crate) fn emit(
    structure: syn::Result<()>,
    rule_errors: Option<TokenStream>,
    expand: impl FnOnce() -> TokenStream,
    fallback: impl FnOnce() -> TokenStream,
) -> TokenStream {
    match structure {
        Ok(()) => {
            let mut out = rule_errors.unwrap_or_default();
            out.extend(expand());
            out
        }
        Err(err) => {
            let mut out = err.to_compile_error();
            out.extend(rule_errors);
            out.extend(fallback());
            out
        }
    }
}

/// The user's impl block without the macro's method markers (`#[handle]`,
/// `#[apply]`, `#[on]`), which are not attributes rustc knows.
pub(crate) fn stripped(item: &ItemImpl, is_marker: fn(&Attribute) -> bool) -> ItemImpl {
    let mut item = item.clone();
    for impl_item in &mut item.items {
        if let ImplItem::Fn(method) = impl_item {
            method.attrs.retain(|a| !is_marker(a));
        }
    }
    item
}

/// The tokens an error about a misplaced attribute macro points at: the
/// item's keyword and name rather than its whole body.
pub(crate) fn item_head(item: &Item) -> TokenStream {
    match item {
        Item::Struct(s) => {
            let (vis, token, ident) = (&s.vis, &s.struct_token, &s.ident);
            quote!(#vis #token #ident)
        }
        Item::Enum(e) => {
            let (vis, token, ident) = (&e.vis, &e.enum_token, &e.ident);
            quote!(#vis #token #ident)
        }
        Item::Fn(f) => f.sig.to_token_stream(),
        Item::Trait(t) => {
            let (vis, token, ident) = (&t.vis, &t.trait_token, &t.ident);
            quote!(#vis #token #ident)
        }
        other => other.to_token_stream(),
    }
}
