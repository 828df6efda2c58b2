//! Attribute parsing: `#[event(…)]`, `#[entity(…)]`, `#[view(…)]` and the
//! `#[handle]` / `#[apply]` / `#[on]` markers.
//!
//! Unknown and duplicate keys are spanned errors. A bad value is reported and
//! the other keys are still read, so one typo does not hide the next mistake.

use proc_macro2::TokenStream;
use syn::meta::ParseNestedMeta;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, Ident, LitInt, LitStr, Path, Token, Type, Visibility};

use crate::ctxt::Ctxt;

mod workflow;
pub(crate) use workflow::{StepAttr, WorkflowArgs, WorkflowRole, is_workflow_marker, workflow_role};

/// One attribute key that may be given at most once.
struct Slot<'c, T> {
    cx: &'c Ctxt,
    attr: &'static str,
    key: &'static str,
    value: Option<T>,
}

impl<'c, T> Slot<'c, T> {
    fn new(cx: &'c Ctxt, attr: &'static str, key: &'static str) -> Self {
        Slot {
            cx,
            attr,
            key,
            value: None,
        }
    }

    /// Keeps the first value; a second one is an error spanned on its key.
    fn set(&mut self, key: &Path, value: T) {
        if self.value.is_some() {
            self.cx.error_spanned_by(
                key,
                format!(
                    "duplicate `{}` in `#[{}(…)]`: give each key once",
                    self.key, self.attr
                ),
            );
        } else {
            self.value = Some(value);
        }
    }

    fn get(self) -> Option<T> {
        self.value
    }
}

/// `#[event(name = "…", version = N, upcast_from = Type, fact = "…")]`.
pub(crate) struct EventAttrs {
    /// The stable type name; the struct's ident when absent.
    pub name: Option<LitStr>,
    /// The schema version; 1 when absent.
    pub version: Option<u32>,
    /// The previous version of this event, which stored payloads upcast from.
    pub upcast_from: Option<Path>,
    /// Why a failure-like name records a real fact (read by the rule checks).
    pub fact: Option<LitStr>,
}

impl EventAttrs {
    /// Reads every `#[event(…)]` attribute of a derive input.
    pub(crate) fn parse(attrs: &[Attribute], cx: &Ctxt) -> Self {
        let mut name = Slot::new(cx, "event", "name");
        let mut version = Slot::new(cx, "event", "version");
        let mut upcast_from = Slot::new(cx, "event", "upcast_from");
        let mut fact = Slot::new(cx, "event", "fact");

        for attr in attrs.iter().filter(|a| a.path().is_ident("event")) {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("name") {
                    let lit: LitStr = meta.value()?.parse()?;
                    if lit.value().trim().is_empty() {
                        cx.error_spanned_by(&lit, "an event name cannot be empty: write `name = \"account.deposited\"` or leave `name` out to use the struct's name");
                    }
                    name.set(&meta.path, lit);
                } else if meta.path.is_ident("version") {
                    let lit: LitInt = meta.value()?.parse()?;
                    match lit.base10_parse::<u32>() {
                        Ok(0) => cx.error_spanned_by(&lit, "schema versions start at 1: write `version = 1` or leave `version` out"),
                        Ok(v) => version.set(&meta.path, v),
                        Err(e) => cx.syn_error(e),
                    }
                } else if meta.path.is_ident("upcast_from") {
                    let path: Path = meta.value()?.parse()?;
                    upcast_from.set(&meta.path, path);
                } else if meta.path.is_ident("fact") {
                    let lit: LitStr = meta.value()?.parse()?;
                    fact.set(&meta.path, lit);
                } else {
                    return Err(meta.error(format!(
                        "unknown key `{}` in `#[event(…)]`: expected `name = \"…\"`, `version = N`, `upcast_from = OlderEvent` or `fact = \"…\"`",
                        path_str(&meta.path)
                    )));
                }
                Ok(())
            });
            if let Err(err) = parsed {
                cx.syn_error(err);
            }
        }

        EventAttrs {
            name: name.get(),
            version: version.get(),
            upcast_from: upcast_from.get(),
            fact: fact.get(),
        }
    }
}

/// `#[entity(name = "…", snapshot_every = N, snapshot_version = N, events = Ident, commands = Ident, error = Type, vis = "…")]`.
pub(crate) struct EntityArgs {
    /// The stream type name; the type's ident in snake_case when absent.
    pub name: Option<LitStr>,
    /// Snapshot every this many events; 0 (never) when absent.
    pub snapshot_every: u64,
    /// The version of the snapshot's meaning (the state type and the apply
    /// logic), with its tokens for spans; 0 when absent.
    pub snapshot_version: Option<(u32, LitInt)>,
    /// The generated event enum's name; `<Type>Event` when absent.
    pub events: Option<Ident>,
    /// The generated command enum's name; `<Type>Command` when absent.
    pub commands: Option<Ident>,
    /// The entity's error type; inferred from the handlers when absent.
    pub error: Option<Type>,
    /// The visibility of the generated enums and `handle`; `pub` when absent.
    pub vis: Option<Visibility>,
}

impl EntityArgs {
    /// Reads the arguments of `#[entity(…)]`.
    pub(crate) fn parse(args: TokenStream, cx: &Ctxt) -> Self {
        let mut name = Slot::new(cx, "entity", "name");
        let mut snapshot_every = Slot::new(cx, "entity", "snapshot_every");
        let mut snapshot_version = Slot::new(cx, "entity", "snapshot_version");
        let mut events = Slot::new(cx, "entity", "events");
        let mut commands = Slot::new(cx, "entity", "commands");
        let mut error = Slot::new(cx, "entity", "error");
        let mut vis = Slot::new(cx, "entity", "vis");

        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("name") {
                let lit: LitStr = meta.value()?.parse()?;
                if lit.value().trim().is_empty() {
                    cx.error_spanned_by(&lit, "an entity name cannot be empty: write `name = \"account\"` or leave `name` out to use the type's name in snake_case");
                }
                name.set(&meta.path, lit);
            } else if meta.path.is_ident("snapshot_every") {
                let lit: LitInt = meta.value()?.parse()?;
                match lit.base10_parse::<u64>() {
                    Ok(n) => snapshot_every.set(&meta.path, n),
                    Err(e) => cx.syn_error(e),
                }
            } else if meta.path.is_ident("snapshot_version") {
                let lit: LitInt = meta.value()?.parse()?;
                match lit.base10_parse::<u32>() {
                    Ok(n) => snapshot_version.set(&meta.path, (n, lit)),
                    Err(e) => cx.syn_error(e),
                }
            } else if meta.path.is_ident("events") {
                events.set(&meta.path, meta.value()?.parse::<Ident>()?);
            } else if meta.path.is_ident("commands") {
                commands.set(&meta.path, meta.value()?.parse::<Ident>()?);
            } else if meta.path.is_ident("error") {
                error.set(&meta.path, meta.value()?.parse::<Type>()?);
            } else if meta.path.is_ident("vis") {
                let lit: LitStr = meta.value()?.parse()?;
                match lit.parse::<Visibility>() {
                    Ok(v) => vis.set(&meta.path, v),
                    Err(_) => cx.error_spanned_by(
                        &lit,
                        "`vis` is a visibility: write `vis = \"pub(crate)\"`, `vis = \"pub(super)\"` or `vis = \"pub\"`",
                    ),
                }
            } else {
                return Err(meta.error(format!(
                    "unknown key `{}` in `#[entity(…)]`: expected `name = \"…\"`, `snapshot_every = N`, `snapshot_version = N`, `events = EnumName`, `commands = EnumName`, `error = Type` or `vis = \"pub(crate)\"`",
                    path_str(&meta.path)
                )));
            }
            Ok(())
        });
        if let Err(err) = parser.parse2(args) {
            cx.syn_error(err);
        }

        EntityArgs {
            name: name.get(),
            snapshot_every: snapshot_every.get().unwrap_or(0),
            snapshot_version: snapshot_version.get(),
            events: events.get(),
            commands: commands.get(),
            error: error.get(),
            vis: vis.get(),
        }
    }
}

/// `#[view(name = "…", version = N, index = [field, …])]`.
pub(crate) struct ViewArgs {
    /// The view's stable name; the row type's ident in snake_case when absent.
    pub name: Option<LitStr>,
    /// The version of the view's logic; 1 when absent.
    pub version: Option<u32>,
    /// The row fields that get a `find_by_<field>` query.
    pub index: Vec<Ident>,
}

impl ViewArgs {
    /// Reads the arguments of `#[view(…)]`. Every key is read, past unknown
    /// ones and bad values, so each mistake is reported at once.
    pub(crate) fn parse(args: TokenStream, cx: &Ctxt) -> Self {
        let mut name = Slot::new(cx, "view", "name");
        let mut version = Slot::new(cx, "view", "version");
        let mut index = Slot::new(cx, "view", "index");

        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("name") {
                if let Some(lit) = value(&meta, cx, |input| input.parse::<LitStr>())? {
                    name.set(&meta.path, lit);
                }
            } else if meta.path.is_ident("version") {
                let number = |input: ParseStream<'_>| {
                    input.parse::<LitInt>().map_err(|e| {
                        syn::Error::new(
                            e.span(),
                            "`version` is the version of the view's logic, a number: write `version = 2`",
                        )
                    })
                };
                if let Some(lit) = value(&meta, cx, number)? {
                    match lit.base10_parse::<u32>() {
                        Ok(v) => version.set(&meta.path, v),
                        Err(e) => cx.syn_error(e),
                    }
                }
            } else if meta.path.is_ident("index") {
                if let Some(fields) = value(&meta, cx, index_fields)? {
                    index.set(&meta.path, fields);
                }
            } else {
                cx.error_spanned_by(
                    &meta.path,
                    format!(
                        "unknown key `{}` in `#[view(…)]`: expected `name = \"…\"`, `version = N` or `index = [field, …]`",
                        path_str(&meta.path)
                    ),
                );
                skip_value(&meta)?;
            }
            Ok(())
        });
        if let Err(err) = parser.parse2(args) {
            cx.syn_error(err);
        }

        ViewArgs {
            name: name.get(),
            version: version.get(),
            index: index.get().unwrap_or_default(),
        }
    }
}

/// The arguments of `#[consumer(…)]`.
pub(crate) struct ConsumerArgs {
    /// The consumer's stable name; the type's ident in snake_case when absent.
    pub name: Option<LitStr>,
    /// Handler runs per event before it is parked.
    pub max_attempts: Option<u32>,
    /// The first retry's wait, in milliseconds.
    pub backoff_ms: Option<u64>,
    /// `order_independent`: a parked event holds back nothing of its stream.
    pub order_independent: bool,
}

impl ConsumerArgs {
    /// Reads the arguments of `#[consumer(…)]`, every key, past mistakes.
    pub(crate) fn parse(args: TokenStream, cx: &Ctxt) -> Self {
        let mut name = Slot::new(cx, "consumer", "name");
        let mut max_attempts = Slot::new(cx, "consumer", "max_attempts");
        let mut backoff_ms = Slot::new(cx, "consumer", "backoff_ms");
        let mut order_independent = Slot::new(cx, "consumer", "order_independent");

        let parser = syn::meta::parser(|meta| {
            let number = |what: &'static str| {
                move |input: ParseStream<'_>| {
                    input.parse::<LitInt>().map_err(|e| {
                        syn::Error::new(e.span(), format!("`{what}` is a number: write `{what} = 5`"))
                    })
                }
            };
            if meta.path.is_ident("name") {
                if let Some(lit) = value(&meta, cx, |input| input.parse::<LitStr>())? {
                    name.set(&meta.path, lit);
                }
            } else if meta.path.is_ident("max_attempts") {
                if let Some(lit) = value(&meta, cx, number("max_attempts"))? {
                    match lit.base10_parse::<u32>() {
                        Ok(0) => cx.error_spanned_by(
                            &lit,
                            "`max_attempts` counts handler runs, so it is at least 1: write `max_attempts = 1` to park an event after its first failure",
                        ),
                        Ok(v) => max_attempts.set(&meta.path, v),
                        Err(e) => cx.syn_error(e),
                    }
                }
            } else if meta.path.is_ident("backoff_ms") {
                if let Some(lit) = value(&meta, cx, number("backoff_ms"))? {
                    match lit.base10_parse::<u64>() {
                        Ok(v) => backoff_ms.set(&meta.path, v),
                        Err(e) => cx.syn_error(e),
                    }
                }
            } else if meta.path.is_ident("order_independent") {
                if meta.input.peek(Token![=]) {
                    cx.error_spanned_by(
                        &meta.path,
                        "`order_independent` is a flag: write `#[consumer(order_independent)]`",
                    );
                    skip_value(&meta)?;
                } else {
                    order_independent.set(&meta.path, true);
                }
            } else {
                cx.error_spanned_by(
                    &meta.path,
                    format!(
                        "unknown key `{}` in `#[consumer(…)]`: expected `name = \"…\"`, `max_attempts = N`, `backoff_ms = N` or `order_independent`",
                        path_str(&meta.path)
                    ),
                );
                skip_value(&meta)?;
            }
            Ok(())
        });
        if let Err(err) = parser.parse2(args) {
            cx.syn_error(err);
        }
        ConsumerArgs {
            name: name.get(),
            max_attempts: max_attempts.get(),
            backoff_ms: backoff_ms.get(),
            order_independent: order_independent.get().unwrap_or(false),
        }
    }
}

/// `[field, …]`: the fields `index = …` names.
fn index_fields(input: ParseStream<'_>) -> syn::Result<Vec<Ident>> {
    let content;
    syn::bracketed!(content in input);
    let fields = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
    Ok(fields.into_iter().collect())
}

/// The `#[on]` marker of a method in a `#[view]` block.
pub(crate) struct OnAttr {
    /// `#[on(key = …)]`: the row key; the event's stream id when absent.
    pub key: Option<Expr>,
    /// `#[on(keys = …)]`: the row keys, several rows per event.
    pub keys: Option<Expr>,
}

/// True for the marker attribute `#[view]` consumes.
pub(crate) fn is_on(attr: &Attribute) -> bool {
    attr.path().is_ident("on")
}

/// The `#[on]` marker of a method, if it has one. A repeated marker and bad
/// keys are errors; the method still counts as a handler so the other checks
/// can run on it.
pub(crate) fn on_attr(attrs: &[Attribute], cx: &Ctxt) -> Option<OnAttr> {
    let mut found: Option<OnAttr> = None;
    for attr in attrs.iter().filter(|a| is_on(a)) {
        if found.is_some() {
            cx.error_spanned_by(
                attr,
                "`#[on]` is given twice: give it once. To fold one event into two rows, write a second method with its own `#[on(key = …)]`",
            );
            continue;
        }
        let mut key = Slot::new(cx, "on", "key");
        let mut keys = Slot::new(cx, "on", "keys");
        match &attr.meta {
            syn::Meta::Path(_) => {}
            syn::Meta::List(_) => {
                let parsed = attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident("key") {
                        if let Some(expr) = value(&meta, cx, |input| input.parse::<Expr>())? {
                            key.set(&meta.path, expr);
                        }
                    } else if meta.path.is_ident("keys") {
                        if let Some(expr) = value(&meta, cx, |input| input.parse::<Expr>())? {
                            keys.set(&meta.path, expr);
                        }
                    } else {
                        cx.error_spanned_by(
                            &meta.path,
                            format!(
                                "unknown key `{}` in `#[on(…)]`: expected `key = <expression over the event and meta>`, e.g. `#[on(key = e.to.clone())]`, or `keys = <expression yielding several keys>`, e.g. `#[on(keys = e.nights())]`",
                                path_str(&meta.path)
                            ),
                        );
                        skip_value(&meta)?;
                    }
                    Ok(())
                });
                if let Err(err) = parsed {
                    cx.syn_error(err);
                }
            }
            syn::Meta::NameValue(_) => cx.error_spanned_by(
                attr,
                "`#[on]` takes no value: write `#[on]`, or `#[on(key = …)]` to choose the row key",
            ),
        }
        found = Some(OnAttr {
            key: key.get(),
            keys: keys.get(),
        });
    }
    found
}

/// A key's `= value`, parsed with `parse`. A missing `=` or a bad value is
/// recorded and the value skipped, so the keys after it are still read.
fn value<T>(
    meta: &ParseNestedMeta<'_>,
    cx: &Ctxt,
    parse: impl FnOnce(ParseStream<'_>) -> syn::Result<T>,
) -> syn::Result<Option<T>> {
    match meta.value().and_then(parse) {
        Ok(value) => Ok(Some(value)),
        Err(err) => {
            cx.syn_error(err);
            skip_value(meta)?;
            Ok(None)
        }
    }
}

/// Skips what is left of a key (`= value`, `(…)`, or a bad value's rest), up
/// to the `,` before the next key.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    while !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        meta.input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}

/// What a method inside an `#[entity]` block is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Role {
    /// `#[handle]`: decides events from a command.
    Handle,
    /// `#[apply]`: folds one event into the state.
    Apply,
}

impl Role {
    pub(crate) fn attr_name(self) -> &'static str {
        match self {
            Role::Handle => "handle",
            Role::Apply => "apply",
        }
    }
}

/// True for the marker attributes `#[entity]` consumes.
pub(crate) fn is_marker(attr: &Attribute) -> bool {
    attr.path().is_ident("handle") || attr.path().is_ident("apply")
}

/// The role a method's markers give it, if any. Arguments, repeats and both
/// markers on one method are errors; the first marker still decides the role
/// so the other checks can run.
pub(crate) fn method_role(attrs: &[Attribute], cx: &Ctxt) -> Option<Role> {
    let mut role: Option<Role> = None;
    for attr in attrs.iter().filter(|a| is_marker(a)) {
        let this = if attr.path().is_ident("handle") {
            Role::Handle
        } else {
            Role::Apply
        };
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            cx.error_spanned_by(
                attr,
                format!("`#[{0}]` takes no arguments (the method's parameter types say what it takes): write `#[{0}]`", this.attr_name()),
            );
        }
        match role {
            None => role = Some(this),
            Some(first) if first == this => cx.error_spanned_by(
                attr,
                format!("`#[{}]` is given twice: give it once", this.attr_name()),
            ),
            Some(first) => cx.error_spanned_by(
                attr,
                format!(
                    "a method is either `#[handle]` (decides events) or `#[apply]` (folds one event), not both: this one is already `#[{}]`",
                    first.attr_name()
                ),
            ),
        }
    }
    role
}

fn path_str(path: &Path) -> String {
    quote::quote!(#path).to_string().replace(' ', "")
}
