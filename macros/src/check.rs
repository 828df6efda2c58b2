//! Structural checks on the model, one function per rule.
//!
//! Each check reports a spanned error that says what is wrong and what to
//! write instead, and every check runs, so the user sees all mistakes at once.
//! The event-sourcing rules on bodies (clock, random, side effects) live in
//! `rules`, not here.

use std::collections::HashMap;

use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{Data, FnArg, Ident, ImplItemFn, Type};

use crate::ast::{Applier, Consumer, ConsumerHandler, Entity, Event, Handler, On, View, type_ident};
use crate::ctxt::Ctxt;

mod workflow;
pub(crate) use workflow::workflow;

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
            "a handler decides from the state it is given: make it a plain `fn`, and do async work before `send`, passing its result in the command",
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
    snapshot_version_needs_snapshots(en, cx);
}

/// `snapshot_version` says which snapshots are still good; an entity that
/// never stores one has nothing for it to judge, so the key is a mistake
/// (most likely a forgotten `snapshot_every`).
fn snapshot_version_needs_snapshots(en: &Entity, cx: &Ctxt) {
    if let Some((_, lit)) = &en.args.snapshot_version
        && en.args.snapshot_every == 0
    {
        cx.error_spanned_by(
            lit,
            "`snapshot_version` has no effect without snapshots: add `snapshot_every = N` to store a snapshot every N events, or remove `snapshot_version`",
        );
    }
}

/// Runs every structural check on a view impl block.
pub(crate) fn view(v: &View, cx: &Ctxt) {
    // As for entities: on a trait impl the methods belong to the trait.
    if !view_impl_is_inherent(v, cx) {
        return;
    }
    view_type_is_named(v, cx);
    view_not_generic(v, cx);
    view_has_on(v, cx);
    index_fields_unique(v, cx);
    for on in &v.handlers {
        on_takes_mut_self(on, cx);
        not_async(
            on.method,
            "on",
            "folding an event into a row is pure and synchronous, so make it a plain `fn`",
            cx,
        );
        not_generic(on.method, "on", cx);
        on_params(on, cx);
        on_returns_unit_or_view_op(on, cx);
        on_key_or_keys(on, cx);
    }
    on_keys_distinct(v, cx);
}

/// Runs every structural check on a consumer impl block.
pub(crate) fn consumer(c: &Consumer, cx: &Ctxt) {
    if let Some((_, path, for_token)) = &c.item.trait_ {
        let mut tokens = path.to_token_stream();
        for_token.to_tokens(&mut tokens);
        cx.error_spanned_by(
            tokens,
            "`#[consumer]` goes on an inherent impl block of the consumer type, not a trait impl: write `#[consumer] impl FraudCheck { … }` without `Trait for`",
        );
        return;
    }
    if c.ident.is_none() {
        cx.error_spanned_by(
            &c.item.self_ty,
            "`#[consumer]` needs a named type: write `#[consumer] impl FraudCheck { … }` for a struct `FraudCheck`",
        );
    }
    impl_not_generic(
        c.item,
        "a consumer cannot be generic: one consumer name keeps one checkpoint, so it names one concrete type. Write `impl FraudCheck { … }`",
        cx,
    );
    consumer_has_on(c, cx);
    for h in &c.handlers {
        consumer_on_is_async(h, cx);
        consumer_on_takes_ref_self(h, cx);
        not_generic(h.method, "on", cx);
        consumer_on_params(h, cx);
        consumer_on_has_no_key(h, cx);
    }
    consumer_events_unique(c, cx);
}

/// A consumer without handlers would follow the log and do nothing.
fn consumer_has_on(c: &Consumer, cx: &Ctxt) {
    if c.handlers.is_empty() {
        cx.error_spanned_by(
            &c.item.self_ty,
            "this `#[consumer]` has no `#[on]` method: add one per event type it reacts to, e.g. `#[on] async fn withdrawn(&self, e: &Withdrawn, ctx: &mut ConsumerContext) { … }`",
        );
    }
}

/// A consumer handler does I/O (commands, timers, outside calls), so the
/// runner awaits it; a synchronous one would block the runtime's thread.
fn consumer_on_is_async(h: &ConsumerHandler, cx: &Ctxt) {
    if h.method.sig.asyncness.is_none() {
        cx.error_spanned_by(
            h.method.sig.fn_token,
            "a consumer's `#[on]` is `async`: it sends commands and calls out, and the runner awaits it. Write `async fn`",
        );
    }
}

/// Handlers of one consumer run concurrently for different streams, so they
/// share the consumer by `&self`; state that must survive lives in entities.
fn consumer_on_takes_ref_self(h: &ConsumerHandler, cx: &Ctxt) {
    const FIX: &str = "write `async fn withdrawn(&self, e: &Withdrawn, ctx: &mut ConsumerContext)`";
    match h.method.sig.inputs.first() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() && r.colon_token.is_none() => {}
        Some(FnArg::Receiver(r)) => cx.error_spanned_by(
            r,
            format!(
                "a consumer's `#[on]` takes `&self`: handlers of different streams run at once, and what must be remembered belongs in an entity, not in the consumer: {FIX}"
            ),
        ),
        _ => cx.error_spanned_by(
            &h.method.sig.ident,
            format!("a consumer's `#[on]` needs a `&self` receiver: {FIX}"),
        ),
    }
}

/// The generated dispatch passes the decoded event by reference and,
/// optionally, the context; nothing else.
fn consumer_on_params(h: &ConsumerHandler, cx: &Ctxt) {
    const FIX: &str = "write `async fn withdrawn(&self, e: &Withdrawn)` or `async fn withdrawn(&self, e: &Withdrawn, ctx: &mut ConsumerContext)`";
    match h.params.as_slice() {
        [] => cx.error_spanned_by(
            &h.method.sig.ident,
            format!("a consumer's `#[on]` needs the event it handles as a parameter: {FIX}"),
        ),
        [ev, rest @ ..] => {
            match &*ev.ty {
                Type::Reference(r) if r.mutability.is_none() => {}
                other => cx.error_spanned_by(
                    other,
                    format!("a consumer's `#[on]` takes the event by shared reference (events are never modified): {FIX}"),
                ),
            }
            if let Some(ctx) = rest.first() {
                let is_mut_context = matches!(&*ctx.ty, Type::Reference(r) if r.mutability.is_some()
                    && type_ident(&r.elem).is_some_and(|i| i == "ConsumerContext"));
                if !is_mut_context {
                    cx.error_spanned_by(
                        ctx,
                        "the optional parameter after the event is the consumer's context: write `ctx: &mut ConsumerContext`",
                    );
                }
            }
            for extra in rest.iter().skip(1) {
                cx.error_spanned_by(
                    extra,
                    "extra parameter: a consumer's `#[on]` takes the event and optionally `ctx: &mut ConsumerContext`: remove it",
                );
            }
        }
    }
}

/// `key = …` chooses a view's row; a consumer has no rows.
fn consumer_on_has_no_key(h: &ConsumerHandler, cx: &Ctxt) {
    if h.has_key {
        cx.error_spanned_by(
            &h.method.sig.ident,
            "`#[on(key = …)]` chooses a view's row, and a consumer has none: write `#[on]`",
        );
    }
}

/// One event type, one handler: the dispatch would not know which of two to run.
fn consumer_events_unique(c: &Consumer, cx: &Ctxt) {
    let mut seen = HashMap::new();
    for h in &c.handlers {
        let Some(ev) = h.event() else { continue };
        let key = ev.to_token_stream().to_string();
        if let Some(first) = seen.insert(key.clone(), &h.method.sig.ident) {
            cx.error_spanned_by(
                &h.method.sig.ident,
                format!(
                    "`{key}` already has a handler in this consumer, `{first}`: one event type has one handler; do both things in it"
                ),
            );
        }
    }
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
    impl_not_generic(
        en.item,
        "an entity cannot be generic: one stream type name must load into one concrete type. Write `impl Account { … }` for a concrete type",
        cx,
    );
}

/// Reports `message` on the generics of an impl block or of its self type.
fn impl_not_generic(item: &syn::ItemImpl, message: &str, cx: &Ctxt) {
    let generics = &item.generics;
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        cx.error_spanned_by(generics, message);
    } else if let Type::Path(p) = &*item.self_ty
        && let Some(last) = p.path.segments.last()
        && !last.arguments.is_none()
    {
        cx.error_spanned_by(&last.arguments, message);
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
        if let syn::ImplItem::Fn(f) = item
            && f.sig.ident == "handle"
        {
            cx.error_spanned_by(
                    &f.sig.ident,
                    "`#[entity]` generates `fn handle(&self, command, ctx)` that dispatches every command: rename this method (e.g. after the command it handles)",
                );
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
            if let Some(ctx) = rest.first()
                && !matches!(&*ctx.ty, Type::Reference(r) if r.mutability.is_none()) {
                    cx.error_spanned_by(
                        &ctx.ty,
                        "the second parameter of a handler is the context, by shared reference: write `ctx: &Context`",
                    );
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
    if let syn::ReturnType::Type(_, ty) = &a.method.sig.output
        && !matches!(&**ty, Type::Tuple(t) if t.elems.is_empty())
    {
        cx.error_spanned_by(
                ty,
                "`#[apply]` returns nothing: an event already happened, so applying it cannot fail or answer. Update `self` instead, and remove the return type",
            );
    }
}

/// Handlers and applies run inside the entity's critical section, and view
/// handlers inside the view's batch; all must be deterministic, and async
/// would invite I/O there.
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
    let mut seen: HashMap<String, (&Type, &Ident)> = HashMap::new();
    for h in &en.handlers {
        let Some(ty) = h.command() else { continue };
        let Some(ident) = type_ident(ty) else { continue };
        let Some(&(first_ty, first)) = seen.get(&ident.to_string()) else {
            seen.insert(ident.to_string(), (ty, &h.method.sig.ident));
            continue;
        };
        let message = if same_path(ty, first_ty) {
            format!(
                "command type `{ident}` is already handled by `fn {first}`: each command type has exactly one `#[handle]`. Merge the two handlers, or declare a separate command struct for this one"
            )
        } else {
            one_variant_name(
                "command",
                &path_text(ty),
                &path_text(first_ty),
                ident,
                first,
                "#[handle]",
            )
        };
        cx.error_spanned_by(ty, message);
    }
}

/// Each event type is one variant of the event enum and is folded by one
/// apply; two would make replay ambiguous. Two *different* types that share
/// a last name (`a::Noted`, `b::Noted`) are another mistake with another
/// fix: their variants would collide, and merging them is no answer.
fn events_unique(en: &Entity, cx: &Ctxt) {
    let mut seen: HashMap<String, (&Type, &Ident)> = HashMap::new();
    for a in &en.appliers {
        let Some(ty) = a.event() else { continue };
        let Some(ident) = type_ident(ty) else { continue };
        let Some(&(first_ty, first)) = seen.get(&ident.to_string()) else {
            seen.insert(ident.to_string(), (ty, &a.method.sig.ident));
            continue;
        };
        let message = if same_path(ty, first_ty) {
            format!(
                "event type `{ident}` is already applied by `fn {first}`: each event type has exactly one `#[apply]`. Merge the two into one method"
            )
        } else {
            one_variant_name(
                "event",
                &path_text(ty),
                &path_text(first_ty),
                ident,
                first,
                "#[apply]",
            )
        };
        cx.error_spanned_by(ty, message);
    }
}

/// A type as written, without the spaces tokens print with (`a :: Noted` → `a::Noted`).
fn path_text(ty: &Type) -> String {
    ty.to_token_stream().to_string().replace(' ', "")
}

/// True when two types are written with the same path. Paths are all a macro
/// sees: `Noted` and `crate::a::Noted` may be one type, which rustc then
/// reports as conflicting `From` impls.
fn same_path(a: &Type, b: &Type) -> bool {
    path_text(a) == path_text(b)
}

/// The message for two types written with different paths that end in one
/// name: the generated enum names its variants after the type's last name.
fn one_variant_name(
    kind: &str,
    this: &str,
    first: &str,
    ident: &Ident,
    first_fn: &Ident,
    attr: &str,
) -> String {
    format!(
        "{kind} types `{this}` and `{first}` (taken by `fn {first_fn}`) are both named `{ident}`: the generated {kind} enum names each variant after its type, so both would be the variant `{ident}`. Import one under another name, e.g. `use {this} as Other{ident};`, and write that name in this `{attr}`"
    )
}

/// `#[view]` defines a view from the row type's own methods; a trait impl
/// belongs to the trait.
fn view_impl_is_inherent(v: &View, cx: &Ctxt) -> bool {
    let Some((_, path, for_token)) = &v.item.trait_ else {
        return true;
    };
    let mut tokens = path.to_token_stream();
    for_token.to_tokens(&mut tokens);
    cx.error_spanned_by(
        tokens,
        "`#[view]` goes on an inherent impl block of the row type, not a trait impl: write `#[view(name = \"…\")] impl Summary { … }` without `Trait for`",
    );
    false
}

/// The row type's own name is the default view name and names the
/// registration.
fn view_type_is_named(v: &View, cx: &Ctxt) {
    if v.ident.is_none() {
        cx.error_spanned_by(
            &v.item.self_ty,
            "`#[view]` needs a named row type: write `#[view] impl Summary { … }` for a struct `Summary`",
        );
    }
}

/// One view name must mean one row type, or its stored rows could not be
/// read back.
fn view_not_generic(v: &View, cx: &Ctxt) {
    impl_not_generic(
        v.item,
        "a view cannot be generic: one view name must fold into one concrete row type. Write `impl Summary { … }` for a concrete type",
        cx,
    );
}

/// A view with no `#[on]` method folds nothing: its rows would stay empty.
fn view_has_on(v: &View, cx: &Ctxt) {
    if v.handlers.is_empty() {
        cx.error_spanned_by(
            &v.item.self_ty,
            "this `#[view]` has no `#[on]` method: add one per event type it folds, e.g. `#[on] fn deposited(&mut self, e: &Deposited) { … }`",
        );
    }
}

/// Each indexed field gets one `find_by_<field>`; naming it twice would
/// generate the query twice.
fn index_fields_unique(v: &View, cx: &Ctxt) {
    for (i, field) in v.args.index.iter().enumerate() {
        if v.args.index[..i].contains(field) {
            cx.error_spanned_by(
                field,
                format!("`{field}` is indexed twice: name each field once in `index = [...]`"),
            );
        }
    }
}

/// An `#[on]` method folds the event into the row it owns: `&mut self`.
fn on_takes_mut_self(on: &On, cx: &Ctxt) {
    const FIX: &str = "write `fn deposited(&mut self, e: &Deposited)`";
    match on.method.sig.inputs.first() {
        Some(FnArg::Receiver(r))
            if r.reference.is_some() && r.mutability.is_some() && r.colon_token.is_none() => {}
        Some(FnArg::Receiver(r)) => cx.error_spanned_by(
            r,
            format!("`#[on]` folds the event into the row, so it takes `&mut self`: {FIX}"),
        ),
        _ => cx.error_spanned_by(
            &on.method.sig.ident,
            format!("`#[on]` needs a `&mut self` receiver, the row it folds into: {FIX}"),
        ),
    }
}

/// An `#[on]` method receives one event by shared reference, and optionally
/// its meta; the generated fold passes exactly those.
fn on_params(on: &On, cx: &Ctxt) {
    const FIX: &str = "write `fn deposited(&mut self, e: &Deposited)` or `fn deposited(&mut self, e: &Deposited, meta: &EventMeta)`";
    match on.params.as_slice() {
        [] => cx.error_spanned_by(
            &on.method.sig.ident,
            format!("`#[on]` needs the event it folds as a parameter: {FIX}"),
        ),
        [ev, rest @ ..] => {
            match &*ev.ty {
                Type::Reference(r) if r.mutability.is_some() => cx.error_spanned_by(
                    &ev.ty,
                    format!(
                        "an event is never modified, so `#[on]` takes it by shared reference: write `{}`",
                        event_param(ev, &r.elem)
                    ),
                ),
                Type::Reference(_) => {}
                other => cx.error_spanned_by(
                    other,
                    format!(
                        "`#[on]` takes the event by shared reference (events are never modified, and the log keeps them): write `{}`",
                        event_param(ev, other)
                    ),
                ),
            }
            if let Some(meta) = rest.first()
                && !is_meta_ref(&meta.ty)
            {
                cx.error_spanned_by(
                        meta,
                        "the optional parameter after the event is its meta, by shared reference: write `meta: &EventMeta`",
                    );
            }
            for extra in rest.iter().skip(1) {
                cx.error_spanned_by(
                    extra,
                    "extra parameter: `#[on]` folds one event, and optionally its `meta: &EventMeta`, into the row and takes nothing else: remove it",
                );
            }
        }
    }
}

/// The event parameter as it should be written, in the user's own names where
/// they are plain (`e: &Opened`), else in the documentation's.
fn event_param(param: &syn::PatType, event: &Type) -> String {
    let name = match &*param.pat {
        syn::Pat::Ident(p) if p.subpat.is_none() => p.ident.to_string(),
        _ => "e".to_owned(),
    };
    let ty = match type_ident(event) {
        Some(_) => event.to_token_stream().to_string().replace(' ', ""),
        None => "Deposited".to_owned(),
    };
    format!("{name}: &{ty}")
}

/// `&EventMeta` or `&EventMeta<'_>`, by any path.
fn is_meta_ref(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) if r.mutability.is_none() => {
            type_ident(&r.elem).is_some_and(|ident| ident == "EventMeta")
        }
        _ => false,
    }
}

/// The fold keeps or deletes the row and nothing else: a handler returns `()`
/// (keep) or a `ViewOp`.
fn on_returns_unit_or_view_op(on: &On, cx: &Ctxt) {
    let syn::ReturnType::Type(_, ty) = &on.method.sig.output else {
        return;
    };
    let allowed = match &**ty {
        Type::Tuple(t) => t.elems.is_empty(),
        other => type_ident(other).is_some_and(|ident| ident == "ViewOp"),
    };
    if !allowed {
        cx.error_spanned_by(
            ty,
            "`#[on]` returns `()` (keep the row) or `ViewOp` (`ViewOp::Delete` removes the row): remove the return type, or return a `ViewOp`",
        );
    }
}

/// `key` names one row, `keys` several: a handler gives one or the other, and
/// the two together would leave the generated fold to guess.
fn on_key_or_keys(on: &On, cx: &Ctxt) {
    if let (Some(_), Some(keys)) = (&on.key, &on.keys) {
        cx.error_spanned_by(
            keys,
            "`#[on]` takes `key = …` (one row) or `keys = …` (several rows), not both: keep `keys = …` and yield the single key among the others",
        );
    }
}

/// Two handlers for one event type writing the same key would fold the event
/// twice into one row.
fn on_keys_distinct(v: &View, cx: &Ctxt) {
    for (i, a) in v.handlers.iter().enumerate() {
        let Some(event) = a.event_tokens() else { continue };
        for b in &v.handlers[..i] {
            if b.event_tokens().as_ref() == Some(&event) && a.key_tokens() == b.key_tokens() {
                cx.error_spanned_by(
                    &a.method.sig.ident,
                    format!(
                        "`{}` and `{}` both fold `{event}` into the same row key; merge them, or give one `#[on(key = …)]`",
                        b.method.sig.ident, a.method.sig.ident,
                    ),
                );
            }
        }
    }
}
