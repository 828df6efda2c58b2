//! `#[view]`: `impl View` (routing, the fold, the index values), the
//! `find_by_<field>` queries, the name's const assert and the registry entry,
//! from one inherent impl block of a row type.
//!
//! Routing compares the stored type name first and decodes only the events
//! the view folds, each once; an event is cloned only for the second and later
//! handlers that fold it. A handler with `#[on(keys = …)]` gets the event
//! behind an `Arc`, shared by all its rows, so a stay of 10,000 nights is one
//! decode and 10,000 pointer copies, not 10,000 clones.

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Ident, Item, ItemImpl, Type};

use crate::ast::{On, View};
use crate::attr::is_on;
use crate::check;
use crate::ctxt::Ctxt;
use crate::expand::event::const_message;
use crate::expand::item_head;
use crate::rules::{self, Site};

/// What a view name may be, in words, for the const assert's message. The
/// rule itself is written once, in `factum::view::is_valid_view_name`, which
/// the assert calls.
const VIEW_NAME_RULE: &str = "a view name is 1 to 40 characters of lowercase ASCII letters, digits and `_`, \
     starting with a letter (`[a-z][a-z0-9_]{0,39}`), because it names the view's tables";

/// Parses, models, checks and expands one `#[view]`.
pub(crate) fn attribute(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: Item = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(err) => {
            let mut out = err.to_compile_error();
            out.extend(input);
            return out;
        }
    };
    let Item::Impl(item) = item else {
        let err = syn::Error::new_spanned(
            item_head(&item),
            "`#[view]` goes on an inherent impl block of the row type: write `#[view(name = \"summary\")] impl Summary { … }` with `#[on]` methods, below `struct Summary`",
        );
        let mut out = err.to_compile_error();
        out.extend(input);
        return out;
    };

    let cx = Ctxt::new();
    let view = View::from_ast(&item, args, &cx);
    check::view(&view, &cx);
    // As for entities: rule violations leave the structure sound, so the full
    // expansion is still emitted beside them, and one mistake in a body is one
    // error, not a cascade from every use of the view.
    let rules_cx = Ctxt::new();
    let roots: Vec<_> = view.handlers.iter().map(|on| (on.method, Site::ViewOn)).collect();
    rules::check_impl(&item, &roots, &rules_cx);
    let rule_errors = rules_cx.check().err().map(|e| e.to_compile_error());
    crate::expand::emit(cx.check(), rule_errors, || expand(&view), || fallback(&view))
}

/// The user's block without the `#[on]` markers. A parameter that only the
/// key expression reads (`#[on(key = e.room)] fn booked(&mut self, e: &Booked)`
/// with a body that ignores `e`) is used, though rustc sees only the body:
/// such a handler starts with `let _ = &e;`, so no unused-variable warning
/// points at it.
fn stripped(view: &View) -> ItemImpl {
    let mut item = crate::expand::stripped(view.item, is_on);
    for on in &view.handlers {
        let Some(key) = on.key.as_ref().or(on.keys.as_ref()) else {
            continue;
        };
        let key = key.to_token_stream();
        let read: Vec<&Ident> = [(on.event_binding(), "e"), (on.meta_binding(), "meta")]
            .into_iter()
            .filter_map(|(binding, alias)| {
                let binding = binding?;
                (mentions(&key, &binding.to_string()) || mentions(&key, alias)).then_some(binding)
            })
            .collect();
        if read.is_empty() {
            continue;
        }
        let name = &on.method.sig.ident;
        for impl_item in &mut item.items {
            if let syn::ImplItem::Fn(method) = impl_item
                && method.sig.ident == *name
            {
                let uses: Vec<syn::Stmt> = read
                    .iter()
                    .map(|binding| syn::parse_quote!(let _ = &#binding;))
                    .collect();
                method.block.stmts.splice(0..0, uses);
            }
        }
    }
    item
}

/// Whether `tokens` contain the identifier `name` anywhere (groups included).
fn mentions(tokens: &TokenStream, name: &str) -> bool {
    tokens.clone().into_iter().any(|tree| match tree {
        proc_macro2::TokenTree::Ident(ident) => ident == name,
        proc_macro2::TokenTree::Group(group) => mentions(&group.stream(), name),
        _ => false,
    })
}

/// One `#[on]` method with its event type and the variant of `__Routed` that
/// carries its events.
struct Routed<'v, 'a> {
    on: &'v On<'a>,
    event: &'a Type,
    variant: Ident,
}

fn expand(view: &View) -> TokenStream {
    // The checks guarantee a named type and an event parameter per handler.
    let Some(ident) = view.ident else {
        return fallback(view);
    };
    let item = stripped(view);
    let handlers: Vec<Routed> = view
        .handlers
        .iter()
        .filter_map(|on| on.event().map(|event| (on, event)))
        .enumerate()
        .map(|(i, (on, event))| Routed {
            on,
            event,
            variant: format_ident!("__H{}", i),
        })
        .collect();
    let variants = handlers.iter().map(|h| {
        let variant = &h.variant;
        let event = h.event;
        match h.on.keys {
            Some(_) => quote!(#variant(::std::sync::Arc<#event>)),
            None => quote!(#variant(#event)),
        }
    });
    let events: Vec<&Type> = handlers.iter().map(|h| h.event).collect();
    let route = route(&handlers);
    let apply_arms = handlers.iter().map(apply_arm);
    let index_values = view.args.index.iter().map(|field| {
        let n = field.unraw().to_string();
        quote_spanned! {field.span()=> (#n, ::std::string::ToString::to_string(&self.#field)) }
    });
    let row = &view.item.self_ty;
    let rust_type = ident.unraw().to_string();
    let view_impl = view_impl(
        view,
        quote!(&[#( <#events as ::factum::Event>::NAME ),*]),
        quote! {
            fn route(
                __record: &::factum::RecordedEvent,
                __meta: &::factum::view::EventMeta<'_>,
                __out: &mut ::std::vec::Vec<(::std::string::String, __Routed)>,
            ) -> ::core::result::Result<(), ::factum::DecodeError> {
                #route
                ::core::result::Result::Ok(())
            }

            fn apply(
                &mut self,
                __routed: __Routed,
                __meta: &::factum::view::EventMeta<'_>,
            ) -> ::factum::view::ViewOp {
                match __routed {
                    #(#apply_arms)*
                }
            }

            fn index_values(&self) -> ::std::vec::Vec<(&'static str, ::std::string::String)> {
                ::std::vec![#(#index_values),*]
            }
        },
    );
    let name_assert = name_assert(view);
    let queries = queries(view);

    quote! {
        #item

        #[allow(unreachable_pub)] // the generated types are `pub` only to name them in `impl View`
        const _: () = {
            #name_assert

            /// A decoded event, bound to the `#[on]` method that folds it.
            #[doc(hidden)]
            // Event types private to the crate are fine: only the generated fold names them.
            #[allow(private_interfaces)]
            pub enum __Routed {
                #( #variants, )*
            }

            #queries
            #view_impl

            ::factum::__private::inventory::submit! {
                ::factum::__private::ViewRegistration::of::<#row>(
                    ::core::concat!(::core::module_path!(), "::", #rust_type)
                )
            }
        };
    }
}

/// After an error: the user's block (markers stripped, so rustc does not add
/// "unknown attribute" errors) and an `impl View` whose fold is never called,
/// since the crate does not build, so that `app.view::<Row>()` and the
/// generated `find_by_<field>` elsewhere do not fail a second time. No stub
/// where the impl itself is the mistake (a trait impl, a generic or unnamed type).
fn fallback(view: &View) -> TokenStream {
    let item = stripped(view);
    let generics = &view.item.generics;
    let generic = !generics.params.is_empty()
        || generics.where_clause.is_some()
        || matches!(&*view.item.self_ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| !s.arguments.is_none()));
    if view.item.trait_.is_some() || view.ident.is_none() || generic {
        return quote!(#item);
    }
    let view_impl = view_impl(
        view,
        quote!(&[]),
        quote! {
            fn route(
                _: &::factum::RecordedEvent,
                _: &::factum::view::EventMeta<'_>,
                _: &mut ::std::vec::Vec<(::std::string::String, __Routed)>,
            ) -> ::core::result::Result<(), ::factum::DecodeError> {
                ::core::unreachable!()
            }

            fn apply(&mut self, __routed: __Routed, _: &::factum::view::EventMeta<'_>) -> ::factum::view::ViewOp {
                match __routed {}
            }

            fn index_values(&self) -> ::std::vec::Vec<(&'static str, ::std::string::String)> {
                ::core::unreachable!()
            }
        },
    );
    let name_assert = name_assert(view);
    let queries = queries(view);
    quote! {
        #item

        #[allow(unreachable_pub)] // as in the full expansion
        const _: () = {
            #name_assert

            #[doc(hidden)]
            pub enum __Routed {}

            #queries
            #view_impl
        };
    }
}

/// `impl View for Row`: the constants and types, with the event types and the
/// three methods given.
fn view_impl(view: &View, event_types: TokenStream, methods: TokenStream) -> TokenStream {
    let row = &view.item.self_ty;
    let name = view.name();
    let version = view.version();
    let index_names = view.args.index.iter().map(|field| field.unraw().to_string());
    quote! {
        #[automatically_derived]
        impl ::factum::view::View for #row {
            const NAME: &'static str = #name;
            const VERSION: u32 = #version;
            const EVENT_TYPES: &'static [&'static str] = #event_types;
            const INDEXES: &'static [&'static str] = &[#( #index_names ),*];
            type Routed = __Routed;
            type Queries = __Queries;

            #methods
        }
    }
}

/// The name rule, checked by the function the stores call, at compile time
/// and spanned on the name as the user wrote it (or on the row type it was
/// derived from).
fn name_assert(view: &View) -> TokenStream {
    let name = view.name();
    let (span, message) = match (&view.args.name, view.ident) {
        (Some(lit), _) => (
            lit.span(),
            format!(
                "invalid view name {name:?}: {VIEW_NAME_RULE}. Write a name such as `name = \"account_summary\"`"
            ),
        ),
        (None, ident) => (
            ident.map_or_else(|| view.item.self_ty.span(), Ident::span),
            format!(
                "the view name derived from the row type, {name:?}, is invalid: {VIEW_NAME_RULE}. Give one with `#[view(name = \"…\")]`"
            ),
        ),
    };
    let message = const_message(&message);
    quote_spanned! {span=>
        const _: () = ::core::assert!(::factum::__private::is_valid_view_name(#name), #message);
    }
}

/// The `Queries` type `ViewHandle<Row>` derefs to: the reader, plus one
/// `find_by_<field>` per indexed field.
fn queries(view: &View) -> TokenStream {
    let row = &view.item.self_ty;
    let finders = view.args.index.iter().map(|field| {
        let n = field.unraw().to_string();
        let method = format_ident!("find_by_{}", n);
        let doc = format!("The rows whose `{n}` renders as the given value, in key order.");
        quote! {
            #[doc = #doc]
            pub async fn #method(
                &self,
                __value: impl ::std::string::ToString,
            ) -> ::core::result::Result<::std::vec::Vec<(::std::string::String, #row)>, ::factum::ViewError> {
                ::factum::view::ViewReader::find_by(
                    &self.0,
                    #n,
                    &::std::string::ToString::to_string(&__value),
                )
                .await
            }
        }
    });
    let doc = format!("Queries of the `{}` view, generated by `#[view]`.", view.name());
    quote! {
        #[doc = #doc]
        pub struct __Queries(::factum::view::ViewReader<#row>);

        #[automatically_derived]
        impl ::core::convert::From<::factum::view::ViewReader<#row>> for __Queries {
            fn from(__reader: ::factum::view::ViewReader<#row>) -> Self {
                __Queries(__reader)
            }
        }

        #[automatically_derived]
        impl ::core::ops::Deref for __Queries {
            type Target = ::factum::view::ViewReader<#row>;

            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        #[automatically_derived]
        impl __Queries {
            #(#finders)*
        }
    }
}

/// The body of `route`: one `if` per distinct event type, which decodes the
/// event once and pushes one `(row key, routed event)` per handler folding it.
fn route(handlers: &[Routed]) -> TokenStream {
    let mut groups: Vec<(String, Vec<&Routed>)> = Vec::new();
    for h in handlers {
        let ty = h.event;
        let t = quote!(#ty).to_string();
        match groups.iter_mut().find(|(k, _)| *k == t) {
            Some((_, members)) => members.push(h),
            None => groups.push((t, vec![h])),
        }
    }
    let arms = groups.iter().map(|(_, members)| {
        let ev = members[0].event;
        let last = members.len() - 1;
        let pushes = members.iter().enumerate().map(|(j, h)| {
            let variant = &h.variant;
            let event = if j == last {
                quote!(__event)
            } else {
                quote!(::core::clone::Clone::clone(&__event))
            };
            if let Some(keys) = &h.on.keys {
                let keys = bound_to_event(h.on, ev, keys, |keys| {
                    quote! {
                        ::core::iter::Iterator::collect::<::std::vec::Vec<::std::string::String>>(
                            ::core::iter::Iterator::map(
                                ::core::iter::IntoIterator::into_iter(#keys),
                                |__key| ::std::string::ToString::to_string(&__key),
                            ),
                        )
                    }
                });
                // Each distinct key once: a row folds the event once however
                // often the expression yields its key.
                return quote! {
                    let mut __keys: ::std::vec::Vec<::std::string::String> = #keys;
                    __keys.sort_unstable();
                    __keys.dedup();
                    let __shared = ::std::sync::Arc::new(#event);
                    for __key in __keys {
                        ::std::vec::Vec::push(
                            __out,
                            (__key, __Routed::#variant(::std::sync::Arc::clone(&__shared))),
                        );
                    }
                };
            }
            let key = row_key(h.on, ev);
            quote! {
                let __key: ::std::string::String = #key;
                ::std::vec::Vec::push(__out, (__key, __Routed::#variant(#event)));
            }
        });
        quote! {
            if __record.event_type == <#ev as ::factum::Event>::NAME {
                let __event: #ev = <#ev as ::factum::Event>::decode_stored(
                    __record.schema_version,
                    __record.codec,
                    &__record.payload,
                )?;
                #(#pushes)*
                return ::core::result::Result::Ok(());
            }
        }
    });
    quote!(#(#arms)*)
}

/// The row key of one handler: its `#[on(key = …)]` expression, which sees the
/// event and the meta as `e` and `meta` and under the handler's own parameter
/// names, or else the event's stream id.
fn row_key(on: &On, ev: &Type) -> TokenStream {
    let Some(expr) = &on.key else {
        return quote!(::std::borrow::ToOwned::to_owned(__meta.stream_id));
    };
    bound_to_event(
        on,
        ev,
        expr,
        |key| quote!(::std::string::ToString::to_string(&(#key))),
    )
}

/// A key expression evaluated where it sees the event and the meta as `e` and
/// `meta` and under the handler's own parameter names, inside what `finish`
/// wraps it in (one expression, so its temporaries live to the end).
fn bound_to_event(
    on: &On,
    ev: &Type,
    expr: &syn::Expr,
    finish: impl FnOnce(&syn::Expr) -> TokenStream,
) -> TokenStream {
    let value = finish(expr);
    let event_alias = on.event_binding().filter(|n| *n != "e").map(|n| {
        quote! {
            #[allow(unused_variables)]
            let #n: &#ev = &__event;
        }
    });
    let meta_alias = on.meta_binding().filter(|n| *n != "meta").map(|n| {
        quote! {
            #[allow(unused_variables)]
            let #n: &::factum::view::EventMeta<'_> = __meta;
        }
    });
    quote_spanned! {expr.span()=>
        {
            #[allow(unused_variables)] // the key expression may use either, or neither
            let e: &#ev = &__event;
            #[allow(unused_variables)]
            let meta: &::factum::view::EventMeta<'_> = __meta;
            #event_alias
            #meta_alias
            #value
        }
    }
}

/// One arm of `apply`: calls the handler, whose `()` or `ViewOp` becomes the
/// row's operation.
fn apply_arm(h: &Routed) -> TokenStream {
    let method = &h.on.method.sig.ident;
    let variant = &h.variant;
    let call = if h.on.takes_meta() {
        quote_spanned!(method.span()=> Self::#method(self, &__event, __meta))
    } else {
        quote_spanned!(method.span()=> Self::#method(self, &__event))
    };
    quote_spanned! {method.span()=>
        __Routed::#variant(__event) => ::factum::__private::IntoViewOp::into_view_op(#call),
    }
}
