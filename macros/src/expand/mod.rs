//! Code generation: from a checked model to tokens.
//!
//! Generated code names everything by absolute path (`::core::…`,
//! `::factum::…`) so a user's own `Result` or `Vec` cannot capture it, and
//! puts its impls inside `const _: () = { … };` so its helpers stay private.

pub(crate) mod entity;
pub(crate) mod event;
pub(crate) mod view;

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::Item;

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
