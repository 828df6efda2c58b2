//! `#[view]`: parse the impl block into a model, check it, expand it.
//!
//! Input: `#[view(name = "…", version = N, index = [field, …])]` on an
//! inherent impl whose `#[on]` / `#[on(key = expr)]` methods fold one event
//! each into `&mut self`. Output: the impl (with the `#[on]` attributes
//! removed), `impl ::factum::view::View`, the generated `find_by_<field>`
//! queries and the inventory registration.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ImplItemFn, ItemImpl, LitInt, LitStr, Pat, ReturnType, Type};

use crate::ctxt::Ctxt;
use crate::rules::{Site, check_body};

/// The parsed `#[view(...)]` arguments.
struct ViewAttr {
    name: Option<LitStr>,
    version: Option<LitInt>,
    indexes: Vec<syn::Ident>,
}

/// One `#[on]` handler.
struct Handler<'a> {
    method: &'a ImplItemFn,
    /// The event type (`E` of `e: &E`).
    event: &'a Type,
    /// The event parameter's name, when it is a plain identifier.
    event_name: Option<&'a syn::Ident>,
    /// The meta parameter's name, when the handler takes `&EventMeta`.
    meta: Option<Option<&'a syn::Ident>>,
    /// `#[on(key = …)]`.
    key: Option<syn::Expr>,
}

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut item: ItemImpl = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(e) => {
            let mut out = e.to_compile_error();
            out.extend(input);
            return out;
        }
    };
    let cx = Ctxt::new();
    // Rule violations (clock, randomness, side effects) leave the structure
    // sound: they are reported beside the full expansion, so one mistake in a
    // body is one error, not a cascade from every use of the view.
    let rules_cx = Ctxt::new();
    let attr = parse_view_attr(args, &cx);
    let handlers = parse_handlers(&item, &cx, &rules_cx);
    check_duplicates(&handlers, &cx);
    if attr.name.is_none() {
        let derived = snake_case(&tokens(&item.self_ty).replace(' ', ""));
        if !is_valid_view_name(&derived) {
            cx.error_spanned_by(
                &item.self_ty,
                format!(
                    "the view name derived from the row type, {derived:?}, is invalid: {VIEW_NAME_RULE}; \
                     give one with `#[view(name = \"…\")]`"
                ),
            );
        }
    }
    let generated = if item.trait_.is_some() {
        cx.error_spanned_by(
            &item.self_ty,
            "#[view] goes on an inherent impl block (`impl Row { … }`)",
        );
        TokenStream::new()
    } else if !item.generics.params.is_empty() {
        cx.error_spanned_by(&item.generics, "a view row type cannot be generic");
        TokenStream::new()
    } else {
        generate(&item, &attr, &handlers)
    };
    let errors = cx.check().err().map(|e| e.to_compile_error());
    let rule_errors = rules_cx.check().err().map(|e| e.to_compile_error());
    strip_on_attrs(&mut item);
    match errors {
        // The user's impl is still emitted so IDEs keep working; the view impl is not,
        // to avoid a cascade of secondary errors.
        Some(errors) => quote! { #item #errors #rule_errors },
        None => quote! { #item #rule_errors #generated },
    }
}

fn parse_view_attr(args: TokenStream, cx: &Ctxt) -> ViewAttr {
    let mut attr = ViewAttr {
        name: None,
        version: None,
        indexes: Vec::new(),
    };
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            let lit: LitStr = meta.value()?.parse()?;
            if !is_valid_view_name(&lit.value()) {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("invalid view name {:?}: {VIEW_NAME_RULE}", lit.value()),
                ));
            }
            if attr.name.replace(lit).is_some() {
                return Err(meta.error("duplicate `name`"));
            }
        } else if meta.path.is_ident("version") {
            let lit: LitInt = meta.value()?.parse()?;
            lit.base10_parse::<u32>()?;
            if attr.version.replace(lit).is_some() {
                return Err(meta.error("duplicate `version`"));
            }
        } else if meta.path.is_ident("index") {
            let content;
            let value = meta.value()?;
            syn::bracketed!(content in value);
            let fields = content.parse_terminated(syn::Ident::parse_any_ident, syn::Token![,])?;
            attr.indexes.extend(fields);
        } else {
            return Err(meta.error("unknown #[view] key; expected `name`, `version` or `index`"));
        }
        Ok(())
    });
    if let Err(e) = syn::parse::Parser::parse2(parser, args) {
        cx.syn_error(e);
    }
    attr
}

/// What a view name may be: it names the view's tables in every store, so
/// distinct names must give distinct table names (no case folding, no
/// character replacement, no truncation by PostgreSQL's 63-byte identifiers).
const VIEW_NAME_RULE: &str = "a view name is 1 to 40 characters of lowercase ASCII letters, digits and `_`, \
     starting with a letter (`[a-z][a-z0-9_]{0,39}`), because it names the view's tables";

/// `[a-z][a-z0-9_]{0,39}`, as `factum::view::is_valid_view_name` checks at run time.
fn is_valid_view_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 40
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// `syn::Ident::parse_any` without pulling in `syn::ext` at every call site.
trait ParseAnyIdent {
    fn parse_any_ident(input: syn::parse::ParseStream<'_>) -> syn::Result<syn::Ident>;
}

impl ParseAnyIdent for syn::Ident {
    fn parse_any_ident(input: syn::parse::ParseStream<'_>) -> syn::Result<syn::Ident> {
        input.parse()
    }
}

fn is_on(attr: &syn::Attribute) -> bool {
    attr.path().is_ident("on")
}

fn strip_on_attrs(item: &mut ItemImpl) {
    for it in &mut item.items {
        if let ImplItem::Fn(f) = it {
            f.attrs.retain(|a| !is_on(a));
        }
    }
}

fn parse_handlers<'a>(item: &'a ItemImpl, cx: &Ctxt, rules_cx: &Ctxt) -> Vec<Handler<'a>> {
    let mut out = Vec::new();
    let mut saw_on = false;
    for it in &item.items {
        let ImplItem::Fn(method) = it else { continue };
        let ons: Vec<_> = method.attrs.iter().filter(|a| is_on(a)).collect();
        let Some(on) = ons.first() else { continue };
        saw_on = true;
        if ons.len() > 1 {
            cx.error_spanned_by(ons[1], "duplicate #[on] on one method");
        }
        let key = parse_on_attr(on, cx);
        if let Some(handler) = check_signature(method, key, cx) {
            check_body(&method.block, Site::ViewOn, rules_cx);
            out.push(handler);
        }
    }
    if !saw_on {
        cx.error_spanned_by(&item.self_ty, "a #[view] needs at least one #[on] method");
    }
    out
}

fn parse_on_attr(attr: &syn::Attribute, cx: &Ctxt) -> Option<syn::Expr> {
    let mut key = None;
    if let syn::Meta::Path(_) = attr.meta {
        return None;
    }
    let res = attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("key") {
            let expr: syn::Expr = meta.value()?.parse()?;
            if key.replace(expr).is_some() {
                return Err(meta.error("duplicate `key`"));
            }
            Ok(())
        } else {
            Err(meta.error("unknown #[on] key; expected `key = <expression over the event and meta>`"))
        }
    });
    if let Err(e) = res {
        cx.syn_error(e);
    }
    key
}

/// `&mut self`, `&Event`, optionally `&EventMeta`; returns `()` or `ViewOp`; not async.
fn check_signature<'a>(method: &'a ImplItemFn, key: Option<syn::Expr>, cx: &Ctxt) -> Option<Handler<'a>> {
    let sig = &method.sig;
    let mut ok = true;
    if let Some(asyncness) = &sig.asyncness {
        cx.error_spanned_by(
            asyncness,
            "an #[on] handler cannot be async: folding an event is a pure, synchronous step",
        );
        ok = false;
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(&sig.generics, "an #[on] handler cannot be generic");
        ok = false;
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_some() => {}
        Some(other) => {
            cx.error_spanned_by(
                other,
                "an #[on] handler takes `&mut self` first: it folds the event into the row",
            );
            ok = false;
        }
        None => {
            cx.error_spanned_by(&sig.ident, "an #[on] handler takes `&mut self` and `&Event`");
            return None;
        }
    }
    let (event, event_name) = match inputs.next() {
        Some(FnArg::Typed(pt)) => match &*pt.ty {
            Type::Reference(r) if r.mutability.is_none() => (&*r.elem, pat_ident(&pt.pat)),
            other => {
                cx.error_spanned_by(
                    other,
                    "the event parameter must be a shared reference `&Event`: events are never modified",
                );
                return None;
            }
        },
        Some(other) => {
            cx.error_spanned_by(other, "expected the event parameter `e: &Event`");
            return None;
        }
        None => {
            cx.error_spanned_by(
                &sig.ident,
                "an #[on] handler takes the event it folds: `e: &Event`",
            );
            return None;
        }
    };
    let meta = match inputs.next() {
        None => None,
        Some(FnArg::Typed(pt)) if is_meta_ref(&pt.ty) => Some(pat_ident(&pt.pat)),
        Some(other) => {
            cx.error_spanned_by(
                other,
                "the optional third parameter of an #[on] handler is `meta: &EventMeta`",
            );
            ok = false;
            None
        }
    };
    if let Some(extra) = inputs.next() {
        cx.error_spanned_by(
            extra,
            "an #[on] handler takes `&mut self`, `&Event` and optionally `&EventMeta`, nothing more",
        );
        ok = false;
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        let allowed = match &**ty {
            Type::Tuple(t) => t.elems.is_empty(),
            Type::Path(p) => p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == "ViewOp"),
            _ => false,
        };
        if !allowed {
            cx.error_spanned_by(
                ty,
                "an #[on] handler returns `()` or `ViewOp` (`ViewOp::Delete` removes the row)",
            );
            ok = false;
        }
    }
    ok.then_some(Handler {
        method,
        event,
        event_name,
        meta,
        key,
    })
}

fn pat_ident(pat: &Pat) -> Option<&syn::Ident> {
    match pat {
        Pat::Ident(p) if p.subpat.is_none() => Some(&p.ident),
        _ => None,
    }
}

fn is_meta_ref(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) if r.mutability.is_none() => match &*r.elem {
            Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "EventMeta"),
            _ => false,
        },
        _ => false,
    }
}

/// Two handlers for one event type writing the same key would fold the event twice into one row.
fn check_duplicates(handlers: &[Handler<'_>], cx: &Ctxt) {
    for (i, a) in handlers.iter().enumerate() {
        for b in &handlers[..i] {
            let same_event = tokens(a.event) == tokens(b.event);
            let same_key = a.key.as_ref().map(tokens) == b.key.as_ref().map(tokens);
            if same_event && same_key {
                cx.error_spanned_by(
                    &a.method.sig.ident,
                    format!(
                        "`{}` and `{}` both fold `{}` into the same row key; merge them, or give one `#[on(key = …)]`",
                        b.method.sig.ident,
                        a.method.sig.ident,
                        tokens(a.event)
                    ),
                );
            }
        }
    }
}

fn tokens(t: &impl quote::ToTokens) -> String {
    t.to_token_stream().to_string()
}

fn generate(item: &ItemImpl, attr: &ViewAttr, handlers: &[Handler<'_>]) -> TokenStream {
    let row = &item.self_ty;
    let row_name = tokens(row).replace(' ', "");
    let name = match &attr.name {
        Some(lit) => lit.clone(),
        None => LitStr::new(&snake_case(&row_name), Span::call_site()),
    };
    let version = match &attr.version {
        Some(v) => quote!(#v),
        None => quote!(1),
    };
    let variants: Vec<_> = (0..handlers.len()).map(|i| format_ident!("__H{}", i)).collect();
    let events: Vec<&Type> = handlers.iter().map(|h| h.event).collect();

    // route: one `if` per distinct event type, decoding once and pushing one entry per handler.
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, h) in handlers.iter().enumerate() {
        let t = tokens(h.event);
        match groups.iter_mut().find(|(k, _)| *k == t) {
            Some((_, v)) => v.push(i),
            None => groups.push((t, vec![i])),
        }
    }
    let route_arms = groups.iter().map(|(_, members)| {
        let ev = handlers[members[0]].event;
        let keys = members.iter().enumerate().map(|(j, &i)| {
            let h = &handlers[i];
            let key_var = format_ident!("__key{}", j);
            match &h.key {
                Some(expr) => {
                    let e_name = h.event_name.filter(|n| *n != "e");
                    let m_name = h.meta.flatten().filter(|n| *n != "meta");
                    let e_alias = e_name.map(|n| quote!(let #n = e;));
                    let m_alias = m_name.map(|n| quote!(let #n = meta;));
                    quote_spanned! {expr.span()=>
                        let #key_var: ::std::string::String = {
                            #[allow(unused_variables)] // the key expression may use either
                            let e: &#ev = &__event;
                            #[allow(unused_variables)]
                            let meta: &::factum::view::EventMeta<'_> = __meta;
                            #[allow(unused_variables)]
                            #e_alias
                            #[allow(unused_variables)]
                            #m_alias
                            ::std::string::ToString::to_string(&(#expr))
                        };
                    }
                }
                None => quote! {
                    let #key_var: ::std::string::String = ::std::borrow::ToOwned::to_owned(__meta.stream_id);
                },
            }
        });
        let pushes = members.iter().enumerate().map(|(j, &i)| {
            let key_var = format_ident!("__key{}", j);
            let variant = &variants[i];
            if j + 1 == members.len() {
                quote!(__out.push((#key_var, __Routed::#variant(__event)));)
            } else {
                quote!(__out.push((#key_var, __Routed::#variant(::core::clone::Clone::clone(&__event))));)
            }
        });
        quote! {
            if __record.event_type == <#ev as ::factum::Event>::NAME {
                let __event: #ev = <#ev as ::factum::Event>::decode_stored(
                    __record.schema_version,
                    __record.codec,
                    &__record.payload,
                )?;
                #(#keys)*
                #(#pushes)*
                return ::core::result::Result::Ok(());
            }
        }
    });
    let apply_arms = handlers.iter().zip(&variants).map(|(h, variant)| {
        let method = &h.method.sig.ident;
        let call = if h.meta.is_some() {
            quote!(#row::#method(self, &__event, __meta))
        } else {
            quote!(#row::#method(self, &__event))
        };
        quote_spanned! {h.method.sig.ident.span()=>
            __Routed::#variant(__event) => ::factum::__private::IntoViewOp::into_view_op(#call),
        }
    });
    let index_names: Vec<String> = attr.indexes.iter().map(|i| i.to_string()).collect();
    let index_values = attr.indexes.iter().map(|field| {
        let n = field.to_string();
        quote_spanned! {field.span()=> (#n, ::std::string::ToString::to_string(&self.#field)) }
    });
    let finders = attr.indexes.iter().map(|field| {
        let n = field.to_string();
        let method = format_ident!("find_by_{}", field);
        let doc = format!("The rows whose `{n}` renders as `value`, in key order.");
        quote! {
            #[doc = #doc]
            pub async fn #method(
                &self,
                value: impl ::std::string::ToString,
            ) -> ::core::result::Result<::std::vec::Vec<(::std::string::String, #row)>, ::factum::ViewError> {
                self.0.find_by(#n, &::std::string::ToString::to_string(&value)).await
            }
        }
    });
    let doc_queries = format!("Queries of the `{}` view, generated by `#[view]`.", name.value());
    quote! {
        #[allow(non_camel_case_types, unreachable_pub, private_interfaces)] // generated names, never written by users
        const _: () = {
            #[doc(hidden)]
            pub enum __Routed {
                #( #variants(#events), )*
            }

            #[doc = #doc_queries]
            pub struct __Queries(::factum::view::ViewReader<#row>);

            #[automatically_derived]
            impl ::core::convert::From<::factum::view::ViewReader<#row>> for __Queries {
                fn from(reader: ::factum::view::ViewReader<#row>) -> Self {
                    __Queries(reader)
                }
            }

            #[automatically_derived]
            impl ::core::ops::Deref for __Queries {
                type Target = ::factum::view::ViewReader<#row>;
                fn deref(&self) -> &Self::Target {
                    &self.0
                }
            }

            impl __Queries {
                #(#finders)*
            }

            #[automatically_derived]
            impl ::factum::view::View for #row {
                const NAME: &'static str = #name;
                const VERSION: u32 = #version;
                const EVENT_TYPES: &'static [&'static str] = &[#( <#events as ::factum::Event>::NAME ),*];
                const INDEXES: &'static [&'static str] = &[#( #index_names ),*];
                type Routed = __Routed;
                type Queries = __Queries;

                fn route(
                    __record: &::factum::RecordedEvent,
                    __meta: &::factum::view::EventMeta<'_>,
                    __out: &mut ::std::vec::Vec<(::std::string::String, __Routed)>,
                ) -> ::core::result::Result<(), ::factum::DecodeError> {
                    #(#route_arms)*
                    ::core::result::Result::Ok(())
                }

                fn apply(&mut self, __routed: __Routed, __meta: &::factum::view::EventMeta<'_>) -> ::factum::view::ViewOp {
                    match __routed {
                        #(#apply_arms)*
                    }
                }

                fn index_values(&self) -> ::std::vec::Vec<(&'static str, ::std::string::String)> {
                    ::std::vec![#(#index_values),*]
                }
            }

            ::factum::__private::inventory::submit! {
                ::factum::__private::ViewRegistration::of::<#row>(::core::concat!(::core::module_path!(), "::", #row_name))
            }
        };
    }
}

fn snake_case(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
