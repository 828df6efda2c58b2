//! The model of a `#[consumer]` impl block: the consumer type, its arguments
//! and its `#[on]` handlers, keeping the user's syn nodes for spans.

use proc_macro2::TokenStream;
use syn::{FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, PatType, Type};

use super::{snake_case, type_ident};
use crate::attr::{ConsumerArgs, on_attr};
use crate::ctxt::Ctxt;

/// A `#[consumer]` impl block.
pub(crate) struct Consumer<'a> {
    pub item: &'a ItemImpl,
    /// The consumer type's own name (the last segment of the impl's self type).
    pub ident: Option<&'a Ident>,
    pub args: ConsumerArgs,
    pub handlers: Vec<Handler<'a>>,
}

/// An `#[on]` method of a consumer: handles one event type.
pub(crate) struct Handler<'a> {
    pub method: &'a ImplItemFn,
    /// The parameters after the receiver: the event, then optionally the context.
    pub params: Vec<&'a PatType>,
    /// Whether `#[on(key = …)]` was written (a view's key; a consumer has no rows).
    pub has_key: bool,
}

impl<'a> Consumer<'a> {
    pub(crate) fn from_ast(item: &'a ItemImpl, args: TokenStream, cx: &Ctxt) -> Self {
        let args = ConsumerArgs::parse(args, cx);
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
            handlers.push(Handler {
                method,
                params,
                has_key: on.key.is_some(),
            });
        }
        Consumer {
            item,
            ident: type_ident(&item.self_ty),
            args,
            handlers,
        }
    }

    /// The consumer's stable name: `name = "…"` or the type's ident in snake_case.
    pub(crate) fn name(&self) -> String {
        match (&self.args.name, self.ident) {
            (Some(lit), _) => lit.value(),
            (None, Some(ident)) => snake_case(&ident.to_string()),
            (None, None) => String::new(),
        }
    }
}

impl<'a> Handler<'a> {
    /// The event type: `E` in `e: &E` (or the type as written; the checks report that).
    pub(crate) fn event(&self) -> Option<&'a Type> {
        self.params.first().map(|p| match &*p.ty {
            Type::Reference(r) => &*r.elem,
            other => other,
        })
    }

    /// Whether the handler takes the context after the event.
    pub(crate) fn takes_context(&self) -> bool {
        self.params.len() >= 2
    }
}
