//! Procedural macros for factum. Use them through the `factum` crate, which
//! re-exports them; generated code reaches the runtime through `factum::__private`.
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

/// Derives `factum::Event` for a struct and enters it in the event catalogue.
///
/// Attributes, all optional, in `#[event(…)]`:
///
/// - `name = "account.deposited"`: the stable type name the log stores
///   (default: the struct's name). Renaming the Rust type keeps the name.
/// - `version = 2`: the schema version this type writes (default 1).
/// - `upcast_from = DepositedV1`: the previous version of this event; stored
///   payloads of older versions decode as that type and convert with
///   `From<DepositedV1> for Deposited`. Checked at compile time: same `name`,
///   lower `version`.
/// - `fact = "…"`: why a name that sounds like a failure records a real fact.
///
/// The struct must also implement `Serialize`, `Deserialize`, `Clone`,
/// `Debug` and `PartialEq`. Enums, unions and generic structs are rejected.
///
/// ```text
/// #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// #[event(name = "account.deposited", version = 2, upcast_from = DepositedV1)]
/// pub struct Deposited { pub amount: u64, pub currency: String }
/// ```
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    expand::event::derive(input.into()).into()
}

/// Turns an inherent impl block into a `factum::Entity`.
///
/// Arguments, all optional, in `#[entity(…)]`: `name = "account"` (the stream
/// type name; default: the type's name in snake_case), `snapshot_every = N`
/// (default 0, never; above 0 the state must be `Serialize + Deserialize`),
/// `events = Name` and `commands = Name` (the generated enums; default
/// `<Type>Event`, `<Type>Command`), `error = Type` (default: the error of the
/// first handler returning `Result`, else `Infallible`), `vis = "pub(crate)"`
/// (of the generated enums and `handle`; default `pub`; no less than the
/// type's own, since `impl Entity` names the enums).
///
/// In the block, `#[handle] fn f(&self, cmd: C) -> R` or
/// `fn f(&self, cmd: C, ctx: &Context) -> R` decides events, where `R` is
/// events or `Result<events, E>`, and events is one event type, a tuple of
/// them, `Option<…>`, `Vec<TypeEvent>` or `()`. `#[apply] fn f(&mut self, e: &E)`
/// folds one event. Other methods are left alone.
///
/// ```text
/// #[entity(name = "account")]
/// impl Account {
///     #[handle]
///     fn deposit(&self, cmd: Deposit) -> Result<Deposited, AccountError> { … }
///     #[apply]
///     fn deposited(&mut self, e: &Deposited) { self.balance += e.amount }
/// }
/// ```
#[proc_macro_attribute]
pub fn entity(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::entity::attribute(args.into(), input.into()).into()
}

/// Turns an inherent impl block of a row type into a `factum::view::View`:
/// `#[view(name = "…", version = N, index = [field, …])]` with `#[on]` /
/// `#[on(key = …)]` handlers. See the `factum::view` docs.
#[proc_macro_attribute]
pub fn view(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::view::attribute(args.into(), input.into()).into()
}
