//! Procedural macros for factum. Use them through the `factum` crate, which
//! re-exports them and holds their documentation, on the re-exports (rustdoc
//! appends each entry point's one line here to it); generated code reaches the
//! runtime through `factum::__private`.
//!
//! Each macro reads its input into a model (`ast`), checks it (`check`, and the
//! event-sourcing rules in `rules`), and only then expands (`expand`). Every
//! error is collected, and the user's item is emitted even on error so IDEs
//! keep working.
#![forbid(unsafe_code)]

mod ast;
mod attr;
mod check;
mod ctxt;
mod expand;
mod rules;

use proc_macro::TokenStream;

/// Documented once, on the re-export `factum::Event`.
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    expand::event::derive(input.into()).into()
}

/// Documented once, on the re-export `factum::entity`.
#[proc_macro_attribute]
pub fn entity(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::entity::attribute(args.into(), input.into()).into()
}

/// Documented once, on the re-export `factum::view` (the attribute macro).
#[proc_macro_attribute]
pub fn view(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::view::attribute(args.into(), input.into()).into()
}

/// Documented once, on the re-export `factum::consumer` (the attribute macro).
#[proc_macro_attribute]
pub fn consumer(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::consumer::attribute(args.into(), input.into()).into()
}

/// Documented once, on the re-export `factum::workflow` (the attribute macro).
#[proc_macro_attribute]
pub fn workflow(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::workflow::attribute(args.into(), input.into()).into()
}
