//! The typed model of what the macros read: an event struct, an entity impl
//! block and its handlers, a view impl block (`ast::view`) and its `#[on]`
//! methods. It keeps references to the user's syn nodes so every error and
//! every generated call can be spanned on the user's tokens.

mod consumer;
pub(crate) mod shape;
mod view;
mod workflow;

use proc_macro2::TokenStream;
use quote::format_ident;
use syn::{DeriveInput, FnArg, GenericArgument, Ident, ImplItem, ImplItemFn, ItemImpl, PathArguments, Type};

use crate::attr::{EntityArgs, EventAttrs, Role, method_role};
use crate::ctxt::Ctxt;

pub(crate) use consumer::{Consumer, Handler as ConsumerHandler};
pub(crate) use view::{On, View};
pub(crate) use workflow::{Decision, Step, Workflow};

/// A `#[derive(Event)]` input.
pub(crate) struct Event<'a> {
    pub input: &'a DeriveInput,
    pub attrs: EventAttrs,
}

impl<'a> Event<'a> {
    pub(crate) fn from_ast(input: &'a DeriveInput, cx: &Ctxt) -> Self {
        Event {
            input,
            attrs: EventAttrs::parse(&input.attrs, cx),
        }
    }

    /// The stable name: `name = "…"` or the struct's ident.
    pub(crate) fn name(&self) -> String {
        match &self.attrs.name {
            Some(lit) => lit.value(),
            None => self.input.ident.to_string(),
        }
    }

    pub(crate) fn version(&self) -> u32 {
        self.attrs.version.unwrap_or(1)
    }
}

/// An `#[entity]` impl block.
pub(crate) struct Entity<'a> {
    pub item: &'a ItemImpl,
    /// The entity type's own name (the last segment of the impl's self type).
    pub ident: Option<&'a Ident>,
    pub args: EntityArgs,
    pub handlers: Vec<Handler<'a>>,
    pub appliers: Vec<Applier<'a>>,
}

/// A `#[handle]` method.
pub(crate) struct Handler<'a> {
    pub method: &'a ImplItemFn,
    /// The parameters after the receiver.
    pub params: Vec<&'a syn::PatType>,
    pub output: Output<'a>,
}

/// What a handler returns.
pub(crate) enum Output<'a> {
    /// Nothing written: `()`.
    Unit,
    /// Events directly: anything `IntoEvents`.
    Events(&'a Type),
    /// `Result<events, error>`.
    Result { ok: &'a Type, err: &'a Type },
}

/// An `#[apply]` method.
pub(crate) struct Applier<'a> {
    pub method: &'a ImplItemFn,
    /// The parameters after the receiver.
    pub params: Vec<&'a syn::PatType>,
}

impl<'a> Entity<'a> {
    pub(crate) fn from_ast(item: &'a ItemImpl, args: TokenStream, cx: &Ctxt) -> Self {
        let args = EntityArgs::parse(args, cx);
        let mut handlers = Vec::new();
        let mut appliers = Vec::new();
        for impl_item in &item.items {
            let ImplItem::Fn(method) = impl_item else {
                continue;
            };
            let params = method
                .sig
                .inputs
                .iter()
                .filter_map(|arg| match arg {
                    FnArg::Typed(pat) => Some(pat),
                    FnArg::Receiver(_) => None,
                })
                .collect();
            match method_role(&method.attrs, cx) {
                Some(Role::Handle) => handlers.push(Handler {
                    method,
                    params,
                    output: Output::of(&method.sig.output),
                }),
                Some(Role::Apply) => appliers.push(Applier { method, params }),
                None => {}
            }
        }
        Entity {
            item,
            ident: type_ident(&item.self_ty),
            args,
            handlers,
            appliers,
        }
    }

    /// The stream type name: `name = "…"` or the type's ident in snake_case.
    pub(crate) fn name(&self) -> String {
        match (&self.args.name, self.ident) {
            (Some(lit), _) => lit.value(),
            (None, Some(ident)) => snake_case(&ident.to_string()),
            (None, None) => String::new(),
        }
    }

    /// The event enum's ident: `events = …` or `<Type>Event`.
    pub(crate) fn events_ident(&self) -> Option<Ident> {
        self.args
            .events
            .clone()
            .or_else(|| self.ident.map(|i| format_ident!("{}Event", i)))
    }

    /// The command enum's ident: `commands = …` or `<Type>Command`.
    pub(crate) fn commands_ident(&self) -> Option<Ident> {
        self.args
            .commands
            .clone()
            .or_else(|| self.ident.map(|i| format_ident!("{}Command", i)))
    }

    /// The entity's error type, when one is written: `error = …`, else the
    /// error of the first fallible handler. `None` means `Infallible`.
    pub(crate) fn error_type(&self) -> Option<&Type> {
        self.args.error.as_ref().or_else(|| {
            self.handlers.iter().find_map(|h| match h.output {
                Output::Result { err, .. } => Some(err),
                _ => None,
            })
        })
    }
}

impl<'a> Handler<'a> {
    /// The command type: the first parameter after `&self`.
    pub(crate) fn command(&self) -> Option<&'a Type> {
        self.params.first().map(|p| &*p.ty)
    }

    /// Whether the handler takes a context after the command.
    pub(crate) fn takes_context(&self) -> bool {
        self.params.len() >= 2
    }
}

impl<'a> Applier<'a> {
    /// The event type: `E` in the parameter `e: &E` (or the type as written when
    /// it is not a reference; the checks report that).
    pub(crate) fn event(&self) -> Option<&'a Type> {
        self.params.first().map(|p| match &*p.ty {
            Type::Reference(r) => &*r.elem,
            other => other,
        })
    }
}

impl<'a> Output<'a> {
    /// `Result` is recognised by its last path segment and two type arguments,
    /// so `std::result::Result<E, X>` and `core::result::Result<E, X>` both count,
    /// and a one-argument alias (`io::Result<E>`) is taken as plain events.
    fn of(output: &'a syn::ReturnType) -> Self {
        let ty = match output {
            syn::ReturnType::Default => return Output::Unit,
            syn::ReturnType::Type(_, ty) => &**ty,
        };
        // Written without let-chains: the workspace's rust-version is 1.85.
        let last = match ty {
            Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
            _ => None,
        };
        if let Some(last) = last.filter(|s| s.ident == "Result")
            && let PathArguments::AngleBracketed(args) = &last.arguments
        {
            let types: Vec<&Type> = args
                .args
                .iter()
                .filter_map(|a| match a {
                    GenericArgument::Type(t) => Some(t),
                    _ => None,
                })
                .collect();
            if let [ok, err] = types[..] {
                return Output::Result { ok, err };
            }
        }
        Output::Events(ty)
    }
}

/// The ident a type is named by: the last segment of a plain path type.
/// It names the enum variant that carries the type.
pub(crate) fn type_ident(ty: &Type) -> Option<&Ident> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| &s.ident),
        Type::Group(g) => type_ident(&g.elem),
        Type::Paren(p) => type_ident(&p.elem),
        _ => None,
    }
}

/// `BankAccount` → `bank_account`, `HTTPServer` → `http_server`: the default
/// name of an entity's streams and of a view's tables, one conversion for both.
pub(crate) fn snake_case(ident: &str) -> String {
    let ident = ident.strip_prefix("r#").unwrap_or(ident);
    let chars: Vec<char> = ident.chars().collect();
    let mut out = String::with_capacity(ident.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let boundary = match prev {
                None | Some('_') => false,
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                Some(p) => p.is_uppercase() && next.is_some_and(|n| n.is_lowercase()),
            };
            if boundary {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    /// An acronym is one word, for entities and views alike (views once
    /// split it letter by letter: `h_t_t_p_stats`).
    #[test]
    fn an_acronym_in_a_type_name_stays_one_word() {
        assert_eq!(snake_case("HTTPStats"), "http_stats");
        assert_eq!(snake_case("AccountSummary"), "account_summary");
    }

    #[test]
    fn entity_names_default_to_snake_case_of_the_type() {
        assert_eq!(snake_case("Account"), "account");
        assert_eq!(snake_case("BankAccount"), "bank_account");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("Cart2Go"), "cart2_go");
        assert_eq!(snake_case("r#Loan"), "loan");
    }
}
