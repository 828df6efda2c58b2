//! Procedural macros for factum. Use them through the `factum` crate, which
//! re-exports them; generated code reaches the runtime through `factum::__private`.
#![forbid(unsafe_code)]

mod ctxt;
mod rules;
mod view;

use proc_macro::TokenStream;

/// Derives `factum::Event`. See the `factum` crate docs.
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let _ = input;
    TokenStream::new()
}

/// Turns an inherent impl block into a `factum::Entity`. See the `factum` crate docs.
#[proc_macro_attribute]
pub fn entity(args: TokenStream, input: TokenStream) -> TokenStream {
    let _ = args;
    input
}

/// Turns an inherent impl block of a row type into a `factum::view::View`:
/// `#[view(name = "…", version = N, index = [field, …])]` with `#[on]` /
/// `#[on(key = …)]` handlers. See the `factum::view` docs.
#[proc_macro_attribute]
pub fn view(args: TokenStream, input: TokenStream) -> TokenStream {
    view::expand(args.into(), input.into()).into()
}
