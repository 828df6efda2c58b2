//! Structural checks on the model, one function per rule.
//!
//! Each check reports a spanned error that says what is wrong and what to
//! write instead, and every check runs, so the user sees all mistakes at once.
//! The event-sourcing rules on bodies (clock, random, side effects) live in
//! `rules`, not here.

use std::collections::HashMap;

use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{Data, FnArg, ImplItemFn, Type};

use crate::ast::{Applier, Entity, Event, Handler, type_ident};
use crate::ctxt::Ctxt;

/// Runs every structural check on an event struct.
pub(crate) fn event(ev: &Event, cx: &Ctxt) {
    event_is_struct(ev, cx);
    event_not_generic(ev, cx);
    upcast_has_version(ev, cx);
}

/// Runs every structural check on an entity impl block.
pub(crate) fn entity(en: &Entity, cx: &Ctxt) {
    // On a trait impl the methods belong to the trait, so checking them as
    // handlers would only add noise to the one real mistake.
    if !entity_impl_is_inherent(en, cx) {
        return;
    }
    entity_type_is_named(en, cx);
    entity_not_generic(en, cx);
    entity_has_handler_and_applier(en, cx);
    entity_leaves_handle_free(en, cx);
    for h in &en.handlers {
        handle_takes_ref_self(h, cx);
        not_async(
            h.method,
            "handle",
            "a handler decides from the state it is given: make it a plain `fn`; do async work in a workflow step or a consumer",
            cx,
        );
        not_generic(h.method, "handle", cx);
        handle_params(h, cx);
    }
    for a in &en.appliers {
        apply_takes_mut_self(a, cx);
        not_async(
            a.method,
            "apply",
            "applying an event is a pure fold of the state: make it a plain `fn`",
            cx,
        );
        not_generic(a.method, "apply", cx);
        apply_params(a, cx);
        apply_returns_unit(a, cx);
    }
    commands_unique(en, cx);
    events_unique(en, cx);
}

/// Events are structs: one fact, one shape. The entity macro builds the enum
/// over them, so an enum here would be an enum inside an enum under one name.
fn event_is_struct(ev: &Event, cx: &Ctxt) {
    let (token, kind) = match &ev.input.data {
        Data::Struct(_) => return,
        Data::Enum(e) => (e.enum_token.span(), "an enum"),
        Data::Union(u) => (u.union_token.span(), "a union"),
    };
    cx.syn_error(syn::Error::new(
        token,
        format!(
            "`#[derive(Event)]` is for structs, and this is {kind}: an event is one fact with one shape. Declare one struct per event (`struct Deposited {{ amount: u64 }}`); `#[entity]` generates the enum over them"
        ),
    ));
}

/// The log stores one concrete type per event name, and decoding must know
/// which; a generic event would have many.
fn event_not_generic(ev: &Event, cx: &Ctxt) {
    let generics = &ev.input.generics;
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        cx.error_spanned_by(
            generics,
            "an event type cannot be generic: a stored event needs one concrete type to decode into. Remove the parameters and use concrete field types",
        );
    }
}

/// `upcast_from` names the previous version, so this one must say which
/// version it is; the default 1 has no predecessor.
fn upcast_has_version(ev: &Event, cx: &Ctxt) {
    if let (Some(old), None) = (&ev.attrs.upcast_from, ev.attrs.version) {
        cx.error_spanned_by(
            old,
            "`upcast_from` needs this event's own version: add `version = N`, with N above the version of the event it upcasts from",
        );
    }
}

/// `#[entity]` defines an entity from its own methods; a trait impl belongs to
/// the trait.
fn entity_impl_is_inherent(en: &Entity, cx: &Ctxt) -> bool {
    let Some((_, path, for_token)) = &en.item.trait_ else {
        return true;
    };
    let mut tokens = path.to_token_stream();
    for_token.to_tokens(&mut tokens);
    cx.error_spanned_by(
        tokens,
        "`#[entity]` goes on an inherent impl block, not a trait impl: write `#[entity] impl Account { … }` without `Trait for`",
    );
    false
}

/// The type's own name names the generated enums and the stream.
fn entity_type_is_named(en: &Entity, cx: &Ctxt) {
    if en.ident.is_none() {
        cx.error_spanned_by(
            &en.item.self_ty,
            "`#[entity]` needs a named type: write `#[entity] impl Account { … }` for a struct `Account`",
        );
    }
}

/// One stream type name must mean one Rust type, or stored streams could not
/// be loaded back.
fn entity_not_generic(en: &Entity, cx: &Ctxt) {
    let generics = &en.item.generics;
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        cx.error_spanned_by(
            generics,
            "an entity cannot be generic: one stream type name must load into one concrete type. Write `impl Account { … }` for a concrete type",
        );
    } else if let Type::Path(p) = &*en.item.self_ty {
        if let Some(last) = p.path.segments.last() {
            if !last.arguments.is_none() {
                cx.error_spanned_by(
                    &last.arguments,
                    "an entity cannot be generic: one stream type name must load into one concrete type. Write `impl Account { … }` for a concrete type",
                );
            }
        }
    }
}

/// An entity with no handler can never produce events, and one with no
/// applier can never change state: both are mistakes, not entities.
fn entity_has_handler_and_applier(en: &Entity, cx: &Ctxt) {
    if en.handlers.is_empty() {
        cx.error_spanned_by(
            &en.item.self_ty,
            "this `#[entity]` has no `#[handle]` method: add one that decides events from a command, e.g. `#[handle] fn deposit(&self, cmd: Deposit) -> Deposited { … }`",
        );
    }
    if en.appliers.is_empty() {
        cx.error_spanned_by(
            &en.item.self_ty,
            "this `#[entity]` has no `#[apply]` method: add one per event type, e.g. `#[apply] fn deposited(&mut self, e: &Deposited) { … }`",
        );
    }
}

/// `#[entity]` generates an inherent `fn handle(&self, command, ctx)`; a
/// user method of that name would collide with it.
fn entity_leaves_handle_free(en: &Entity, cx: &Ctxt) {
    for item in &en.item.items {
        if let syn::ImplItem::Fn(f) = item {
            if f.sig.ident == "handle" {
                cx.error_spanned_by(
                    &f.sig.ident,
                    "`#[entity]` generates `fn handle(&self, command, ctx)` that dispatches every command: rename this method (e.g. after the command it handles)",
                );
            }
        }
    }
}

/// State changes only through events, so a handler reads the state and never
/// writes it: `&self`.
fn handle_takes_ref_self(h: &Handler, cx: &Ctxt) {
    const FIX: &str = "state changes only through events: take `&self` and return events, e.g. `fn deposit(&self, cmd: Deposit) -> Deposited`";
    match h.method.sig.inputs.first() {
        Some(FnArg::Receiver(r))
            if r.reference.is_some() && r.mutability.is_none() && r.colon_token.is_none() => {}
        Some(FnArg::Receiver(r)) => {
            let what = if r.mutability.is_some() && r.reference.is_some() {
                "`#[handle]` takes `&mut self`"
            } else if r.reference.is_none() && r.colon_token.is_none() {
                "`#[handle]` takes `self` by value"
            } else {
                "`#[handle]` takes a typed `self`"
            };
            cx.error_spanned_by(r, format!("{what}, but {FIX}"));
        }
        _ => cx.error_spanned_by(
            &h.method.sig.ident,
            format!("`#[handle]` needs a `&self` receiver: {FIX}"),
        ),
    }
}

/// A handler takes the command, and optionally `ctx: &Context` after it;
/// the generated dispatch passes exactly those.
fn handle_params(h: &Handler, cx: &Ctxt) {
    let sig = &h.method.sig;
    match h.params.as_slice() {
        [] => cx.error_spanned_by(
            &sig.ident,
            "`#[handle]` needs the command as a parameter: write `fn deposit(&self, cmd: Deposit)` or `fn deposit(&self, cmd: Deposit, ctx: &Context)`",
        ),
        [cmd, rest @ ..] => {
            match &*cmd.ty {
                Type::Reference(_) => cx.error_spanned_by(
                    &cmd.ty,
                    "a handler takes its command by value (the command enum owns it): write `cmd: Deposit`, not `cmd: &Deposit`",
                ),
                ty if type_ident(ty).is_none() => cx.error_spanned_by(
                    ty,
                    "the command must be a named type (it names its variant of the command enum): write a struct such as `cmd: Deposit`",
                ),
                _ => {}
            }
            if let Some(ctx) = rest.first() {
                if !matches!(&*ctx.ty, Type::Reference(r) if r.mutability.is_none()) {
                    cx.error_spanned_by(
                        &ctx.ty,
                        "the second parameter of a handler is the context, by shared reference: write `ctx: &Context`",
                    );
                }
            }
            for extra in rest.iter().skip(1) {
                cx.error_spanned_by(
                    extra,
                    "extra parameter: a handler takes the command and optionally `ctx: &Context`; put other inputs in the command",
                );
            }
        }
    }
}

/// An apply folds an event into the state it owns: `&mut self`.
fn apply_takes_mut_self(a: &Applier, cx: &Ctxt) {
    const FIX: &str = "write `fn deposited(&mut self, e: &Deposited)`";
    match a.method.sig.inputs.first() {
        Some(FnArg::Receiver(r))
            if r.reference.is_some() && r.mutability.is_some() && r.colon_token.is_none() => {}
        Some(FnArg::Receiver(r)) => cx.error_spanned_by(
            r,
            format!("`#[apply]` changes the state, so it takes `&mut self`: {FIX}"),
        ),
        _ => cx.error_spanned_by(
            &a.method.sig.ident,
            format!("`#[apply]` needs a `&mut self` receiver: {FIX}"),
        ),
    }
}

/// An apply receives exactly one event, by shared reference: events are never
/// modified, and the log keeps owning them.
fn apply_params(a: &Applier, cx: &Ctxt) {
    const FIX: &str = "write `fn deposited(&mut self, e: &Deposited)`";
    match a.params.as_slice() {
        [] => cx.error_spanned_by(
            &a.method.sig.ident,
            format!("`#[apply]` needs the event as a parameter: {FIX}"),
        ),
        [ev, rest @ ..] => {
            match &*ev.ty {
                Type::Reference(r) if r.mutability.is_some() => cx.error_spanned_by(
                    &ev.ty,
                    format!("an event is never modified, so `#[apply]` takes it by shared reference: {FIX}"),
                ),
                Type::Reference(r) if type_ident(&r.elem).is_none() => cx.error_spanned_by(
                    &r.elem,
                    "the event must be a named type (it names its variant of the event enum): write a struct such as `e: &Deposited`",
                ),
                Type::Reference(_) => {}
                other => cx.error_spanned_by(
                    other,
                    format!("`#[apply]` takes the event by reference (the log keeps it): {FIX}"),
                ),
            }
            for extra in rest {
                cx.error_spanned_by(
                    extra,
                    format!("extra parameter: `#[apply]` folds one event into the state and takes nothing else: {FIX}"),
                );
            }
        }
    }
}

/// Apply cannot fail or answer: an event already happened, and the fold's only
/// result is the new state.
fn apply_returns_unit(a: &Applier, cx: &Ctxt) {
    if let syn::ReturnType::Type(_, ty) = &a.method.sig.output {
        if !matches!(&**ty, Type::Tuple(t) if t.elems.is_empty()) {
            cx.error_spanned_by(
                ty,
                "`#[apply]` returns nothing: an event already happened, so applying it cannot fail or answer. Update `self` instead, and remove the return type",
            );
        }
    }
}

/// Handlers and applies run inside the entity's critical section and must be
/// deterministic; async would invite I/O there.
fn not_async(method: &ImplItemFn, attr: &str, fix: &str, cx: &Ctxt) {
    if let Some(token) = &method.sig.asyncness {
        cx.error_spanned_by(token, format!("`#[{attr}]` cannot be `async`: {fix}"));
    }
}

/// The generated dispatch names each method with concrete types.
fn not_generic(method: &ImplItemFn, attr: &str, cx: &Ctxt) {
    let generics = &method.sig.generics;
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        cx.error_spanned_by(
            generics,
            format!("`#[{attr}]` methods cannot be generic: the generated dispatch calls them with concrete types. Remove the type parameters"),
        );
    }
}

/// Each command type is one variant of the command enum and has one handler;
/// two handlers would make the dispatch ambiguous.
fn commands_unique(en: &Entity, cx: &Ctxt) {
    let mut seen = HashMap::new();
    for h in &en.handlers {
        let Some(ty) = h.command() else { continue };
        let Some(ident) = type_ident(ty) else { continue };
        if let Some(first) = seen.insert(ident.to_string(), &h.method.sig.ident) {
            seen.insert(ident.to_string(), first);
            cx.error_spanned_by(
                ty,
                format!(
                    "command type `{ident}` is already handled by `fn {first}`: each command type has exactly one `#[handle]`. Merge the two handlers, or declare a separate command struct for this one"
                ),
            );
        }
    }
}

/// Each event type is one variant of the event enum and is folded by one
/// apply; two would make replay ambiguous.
fn events_unique(en: &Entity, cx: &Ctxt) {
    let mut seen = HashMap::new();
    for a in &en.appliers {
        let Some(ty) = a.event() else { continue };
        let Some(ident) = type_ident(ty) else { continue };
        if let Some(first) = seen.insert(ident.to_string(), &a.method.sig.ident) {
            seen.insert(ident.to_string(), first);
            cx.error_spanned_by(
                ty,
                format!(
                    "event type `{ident}` is already applied by `fn {first}`: each event type has exactly one `#[apply]`. Merge the two into one method"
                ),
            );
        }
    }
}
