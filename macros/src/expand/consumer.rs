//! `#[consumer]`: `impl Consumer` (the event types, the options, the async
//! dispatch), the name's const assert and the registry entry, from one
//! inherent impl block of a consumer type.
//!
//! The dispatch compares the stored type name and decodes only the event it
//! handles; an event that does not decode is parked at once with the decode
//! error (running the handler again cannot change how bytes decode).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Ident, Item, ItemImpl, Type};

use crate::ast::{Consumer, ConsumerHandler};
use crate::attr::is_on;
use crate::check;
use crate::ctxt::Ctxt;
use crate::expand::event::const_message;
use crate::expand::item_head;

/// What a consumer name may be, in words, for the const assert's message; the
/// rule itself is `factum::consumer::is_valid_consumer_name`, which the assert calls.
const NAME_RULE: &str = "a consumer name is 1 to 64 bytes of lowercase ASCII letters, digits, `_`, `.` and `-`, \
     starting with a letter, because its checkpoint and dead letters are kept under it";

/// Parses, models, checks and expands one `#[consumer]`.
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
            "`#[consumer]` goes on an inherent impl block of the consumer type: write `#[consumer(name = \"fraud_check\")] impl FraudCheck { … }` with `#[on]` async methods, below `struct FraudCheck`",
        );
        let mut out = err.to_compile_error();
        out.extend(input);
        return out;
    };
    let cx = Ctxt::new();
    let consumer = Consumer::from_ast(&item, args, &cx);
    check::consumer(&consumer, &cx);
    // A consumer is where side effects belong: no body rules apply to its
    // handlers, so there are no rule errors to emit beside the expansion.
    crate::expand::emit(cx.check(), None, || expand(&consumer), || fallback(&consumer))
}

fn stripped(item: &ItemImpl) -> ItemImpl {
    crate::expand::stripped(item, is_on)
}

fn expand(c: &Consumer) -> TokenStream {
    let Some(ident) = c.ident else {
        return fallback(c);
    };
    let item = stripped(c.item);
    let ty = &c.item.self_ty;
    let name = c.name();
    let events: Vec<&Type> = c.handlers.iter().filter_map(ConsumerHandler::event).collect();
    let arms = c.handlers.iter().filter_map(|h| h.event().map(|ev| arm(h, ev)));
    let max_attempts = c.args.max_attempts.map(|n| quote!(const MAX_ATTEMPTS: u32 = #n;));
    let backoff = c
        .args
        .backoff_ms
        .map(|ms| quote!(const BACKOFF: ::core::time::Duration = ::core::time::Duration::from_millis(#ms);));
    let order_independent = c.args.order_independent.then(|| {
        quote!(
            const ORDER_INDEPENDENT: bool = true;
        )
    });
    let name_assert = name_assert(c);
    let rust_type = ident.unraw().to_string();
    quote! {
        #item

        const _: () = {
            #name_assert

            #[automatically_derived]
            impl ::factum::Consumer for #ty {
                const NAME: &'static str = #name;
                const EVENT_TYPES: &'static [&'static str] = &[#( <#events as ::factum::Event>::NAME ),*];
                #max_attempts
                #backoff
                #order_independent

                fn handle<'__a>(
                    &'__a self,
                    __ctx: &'__a mut ::factum::ConsumerContext,
                ) -> ::factum::__private::HandleFuture<'__a> {
                    ::std::boxed::Box::pin(async move {
                        #(#arms)*
                        ::factum::Handled::Park(::std::format!(
                            "consumer {} has no handler for event type `{}`",
                            #name,
                            __ctx.record().event_type,
                        ))
                    })
                }
            }

            ::factum::__private::inventory::submit! {
                ::factum::__private::ConsumerRegistration::of::<#ty>(
                    ::core::concat!(::core::module_path!(), "::", #rust_type)
                )
            }
        };
    }
}

/// One handler's arm of the dispatch: decode when the stored name matches,
/// call, and turn what it returned into a decision.
fn arm(h: &ConsumerHandler, ev: &Type) -> TokenStream {
    let method = &h.method.sig.ident;
    let call = if h.takes_context() {
        quote_spanned!(method.span()=> Self::#method(self, &__event, __ctx).await)
    } else {
        quote_spanned!(method.span()=> Self::#method(self, &__event).await)
    };
    let ev_name = quote!(#ev).to_string();
    quote! {
        if __ctx.record().event_type == <#ev as ::factum::Event>::NAME {
            let __decoded = {
                let __record = __ctx.record();
                <#ev as ::factum::Event>::decode_stored(__record.schema_version, __record.codec, &__record.payload)
            };
            let __event: #ev = match __decoded {
                ::core::result::Result::Ok(__event) => __event,
                ::core::result::Result::Err(__error) => {
                    return ::factum::Handled::Park(::std::format!(
                        "the event does not decode as `{}`: {}",
                        #ev_name,
                        __error,
                    ));
                }
            };
            return ::factum::__private::IntoHandled::into_handled(#call);
        }
    }
}

/// The name rule at compile time, spanned on the name as written (or the type).
fn name_assert(c: &Consumer) -> TokenStream {
    let name = c.name();
    let (span, message) = match (&c.args.name, c.ident) {
        (Some(lit), _) => (
            lit.span(),
            format!(
                "invalid consumer name {name:?}: {NAME_RULE}. Write a name such as `name = \"fraud_check\"`"
            ),
        ),
        (None, ident) => (
            ident.map_or_else(|| c.item.self_ty.span(), Ident::span),
            format!(
                "the consumer name derived from the type, {name:?}, is invalid: {NAME_RULE}. Give one with `#[consumer(name = \"…\")]`"
            ),
        ),
    };
    let message = const_message(&message);
    quote_spanned! {span=>
        const _: () = ::core::assert!(::factum::__private::is_valid_consumer_name(#name), #message);
    }
}

/// After a structure error: the user's block without the markers, so rustc
/// adds no "unknown attribute" errors. No stub impl: starting a consumer that
/// does not build is the one use, and it fails on the error shown.
fn fallback(c: &Consumer) -> TokenStream {
    let item = stripped(c.item);
    quote!(#item)
}
