//! `#[derive(Event)]`: the `Event` impl, the upcast chain and the catalogue entry.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::DeriveInput;
use syn::spanned::Spanned;

use crate::ast::Event;
use crate::ast::shape;
use crate::check;
use crate::ctxt::Ctxt;
use crate::rules;

/// Parses, models, checks and expands one `#[derive(Event)]`.
pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(err) => return err.to_compile_error(),
    };
    let cx = Ctxt::new();
    let ev = Event::from_ast(&input, &cx);
    check::event(&ev, &cx);
    // As for entities: a rule violation keeps the full expansion beside it.
    let rules_cx = Ctxt::new();
    rules::check_event(&input, ev.attrs.fact.as_ref(), &rules_cx);
    let rule_errors = rules_cx.check().err().map(|e| e.to_compile_error());
    match cx.check() {
        Ok(()) => {
            let mut out = rule_errors.unwrap_or_default();
            out.extend(expand(&ev));
            out
        }
        Err(err) => {
            let mut out = err.to_compile_error();
            out.extend(rule_errors);
            out.extend(fallback(&ev));
            out
        }
    }
}

fn expand(ev: &Event) -> TokenStream {
    let ty = &ev.input.ident;
    let name = ev.name();
    let version = ev.version();

    let older = match &ev.attrs.upcast_from {
        Some(old) => quote_spanned! {old.span()=>
            ::core::result::Result::map(
                <#old as ::factum::Event>::decode_stored(__schema_version, __codec, __payload),
                <Self as ::core::convert::From<#old>>::from,
            )
        },
        None => quote! {
            ::core::result::Result::Err(::factum::__private::unknown_version::<Self>(__schema_version))
        },
    };
    let upcast_asserts = ev.attrs.upcast_from.as_ref().map(|old| {
        let old_str = quote!(#old).to_string().replace(' ', "");
        let same_name = const_message(&format!(
            "`#[event(upcast_from = {old_str})]`: `{old_str}` must have the same event name as `{ty}` (\"{name}\"), since both are versions of one event. Give both the same `name = \"…\"`"
        ));
        let older_version = const_message(&format!(
            "`#[event(upcast_from = {old_str})]`: `{old_str}` must have a lower version than `{ty}` (version {version}), since stored payloads upcast from old to new"
        ));
        quote_spanned! {old.span()=>
            const _: () = ::core::assert!(
                ::factum::__private::const_str_eq(<#old as ::factum::Event>::NAME, #name),
                #same_name
            );
            const _: () = ::core::assert!(<#old as ::factum::Event>::VERSION < #version, #older_version);
        }
    });

    let registration = registration(ev);
    let audit = crate::expand::audit::event(ty);

    quote! {
        const _: () = {
            #[automatically_derived]
            impl ::factum::Event for #ty {
                const NAME: &'static str = #name;
                const VERSION: u32 = #version;

                fn decode_stored(
                    __schema_version: u32,
                    __codec: ::factum::Codec,
                    __payload: &[u8],
                ) -> ::core::result::Result<Self, ::factum::DecodeError> {
                    if __schema_version == #version {
                        ::factum::__private::decode_current::<Self>(__codec, __payload)
                    } else if __schema_version < #version {
                        #older
                    } else {
                        ::core::result::Result::Err(::factum::__private::unknown_version::<Self>(__schema_version))
                    }
                }
            }

            #upcast_asserts

            #registration
            #audit
        };
    }
}

/// The catalogue entry: the name, version and wire shape the event lock
/// compares across releases, and the version `upcast_from` names.
fn registration(ev: &Event) -> TokenStream {
    let ty = &ev.input.ident;
    let name = ev.name();
    let version = ev.version();
    let rust_type = ty.to_string();
    let upcast_from = match &ev.attrs.upcast_from {
        Some(old) => quote_spanned! {old.span()=>
            ::core::option::Option::Some(<#old as ::factum::Event>::VERSION)
        },
        None => quote!(::core::option::Option::None),
    };
    let serde = shape::container_serde(ev.input);
    let fields = shape::fields(ev.input).into_iter().map(|field| {
        let (name, text, field_ty, serde) = (field.name, field.text, field.ty, field.serde);
        quote! {
            ::factum::__private::FieldShape {
                name: #name,
                ty: #text,
                serde: &[#(#serde),*],
                resolved: ::core::any::type_name::<#field_ty>,
            }
        }
    });
    quote! {
        ::factum::__private::inventory::submit! {
            ::factum::__private::EventRegistration {
                name: #name,
                version: #version,
                rust_type: #rust_type,
                module_path: ::core::module_path!(),
                upcast_from: #upcast_from,
                serde: &[#(#serde),*],
                fields: &[#(#fields),*],
            }
        }
    }
}

/// After an error, an `Event` impl that keeps the entity enums that name this
/// type from failing too; it is never called, since the crate does not build.
fn fallback(ev: &Event) -> TokenStream {
    let generics = &ev.input.generics;
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        return TokenStream::new();
    }
    let ty = &ev.input.ident;
    let name = ev.name();
    let version = ev.version();
    quote! {
        const _: () = {
            #[automatically_derived]
            impl ::factum::Event for #ty {
                const NAME: &'static str = #name;
                const VERSION: u32 = #version;
                fn decode_stored(
                    _: u32,
                    _: ::factum::Codec,
                    _: &[u8],
                ) -> ::core::result::Result<Self, ::factum::DecodeError> {
                    ::core::unreachable!()
                }
            }
        };
    }
}

/// A panic message for a const assert: a literal, with braces escaped since
/// `assert!` reads it as a format string.
pub(crate) fn const_message(message: &str) -> TokenStream {
    let escaped = message.replace('{', "{{").replace('}', "}}");
    quote!(#escaped)
}
