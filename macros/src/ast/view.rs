//! The model of a `#[view]` impl block: the row type, its arguments and its
//! `#[on]` methods, keeping the user's syn nodes for spans.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{Expr, FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, Pat, PatType, Type};

use super::{snake_case, type_ident};
use crate::attr::{ViewArgs, on_attr};
use crate::ctxt::Ctxt;

/// A `#[view]` impl block.
pub(crate) struct View<'a> {
    pub item: &'a ItemImpl,
    /// The row type's own name (the last segment of the impl's self type).
    pub ident: Option<&'a Ident>,
    pub args: ViewArgs,
    pub handlers: Vec<On<'a>>,
}

/// An `#[on]` method: folds one event type into a row.
pub(crate) struct On<'a> {
    pub method: &'a ImplItemFn,
    /// The parameters after the receiver: the event, then optionally the meta.
    pub params: Vec<&'a PatType>,
    /// `#[on(key = …)]`: the row key; the event's stream id when absent.
    pub key: Option<Expr>,
    /// `#[on(keys = …)]`: several row keys, each row folding the event once.
    pub keys: Option<Expr>,
}

impl<'a> View<'a> {
    pub(crate) fn from_ast(item: &'a ItemImpl, args: TokenStream, cx: &Ctxt) -> Self {
        let args = ViewArgs::parse(args, cx);
        let mut handlers = Vec::new();
        for impl_item in &item.items {
            let ImplItem::Fn(method) = impl_item else {
                continue;
            };
            let Some(on) = on_attr(&method.attrs, cx) else {
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
            handlers.push(On {
                method,
                params,
                key: on.key,
                keys: on.keys,
            });
        }
        View {
            item,
            ident: type_ident(&item.self_ty),
            args,
            handlers,
        }
    }

    /// The view's stable name: `name = "…"` or the row type's ident in
    /// snake_case, the same conversion `#[entity]` uses.
    pub(crate) fn name(&self) -> String {
        match (&self.args.name, self.ident) {
            (Some(lit), _) => lit.value(),
            (None, Some(ident)) => snake_case(&ident.to_string()),
            (None, None) => String::new(),
        }
    }

    /// The version of the view's logic: `version = N`, or 1.
    pub(crate) fn version(&self) -> u32 {
        self.args.version.unwrap_or(1)
    }
}

impl<'a> On<'a> {
    /// The event type: `E` in the parameter `e: &E` (or the type as written when
    /// it is not a reference; the checks report that).
    pub(crate) fn event(&self) -> Option<&'a Type> {
        self.params.first().map(|p| match &*p.ty {
            Type::Reference(r) => &*r.elem,
            other => other,
        })
    }

    /// The name the event parameter binds, when it is a plain identifier: the
    /// key expression may use it beside `e`.
    pub(crate) fn event_binding(&self) -> Option<&'a Ident> {
        self.params.first().and_then(|p| pat_ident(&p.pat))
    }

    /// Whether the handler takes the event's meta after the event.
    pub(crate) fn takes_meta(&self) -> bool {
        self.params.len() >= 2
    }

    /// The name the meta parameter binds, when it is a plain identifier: the
    /// key expression may use it beside `meta`.
    pub(crate) fn meta_binding(&self) -> Option<&'a Ident> {
        self.params.get(1).and_then(|p| pat_ident(&p.pat))
    }

    /// The event type as written, to compare handlers by.
    pub(crate) fn event_tokens(&self) -> Option<String> {
        self.event().map(|ty| ty.to_token_stream().to_string())
    }

    /// The key expression as written (`keys = …` marked apart from `key = …`), to compare handlers by.
    pub(crate) fn key_tokens(&self) -> Option<String> {
        match (&self.key, &self.keys) {
            (Some(key), _) => Some(key.to_token_stream().to_string()),
            (None, Some(keys)) => Some(format!("keys {}", keys.to_token_stream())),
            (None, None) => None,
        }
    }
}

fn pat_ident(pat: &Pat) -> Option<&Ident> {
    match pat {
        Pat::Ident(p) if p.subpat.is_none() => Some(&p.ident),
        _ => None,
    }
}
