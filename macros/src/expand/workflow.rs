//! `#[workflow]`: the step references (`Self::deposit` is a `StepRef`), the
//! signal enum, `impl Workflow` (decisions, step dispatch, step options) and
//! the registry entry, from one inherent impl block.
//!
//! Each `#[step]` method is emitted under a hidden name, `__factum_step_<name>`,
//! and its own name becomes an associated `const` of type
//! `StepRef<Self, Input>`, so a transition's target is a path the compiler
//! resolves and whose input type it checks.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::{ImplItem, Item, ItemImpl};

use crate::ast::{Step, Workflow};
use crate::attr::is_workflow_marker;
use crate::check;
use crate::ctxt::Ctxt;
use crate::expand::item_head;
use crate::rules::{self, Site};

/// Parses, models, checks and expands one `#[workflow]`.
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
            "`#[workflow]` goes on an inherent impl block of the state type: write `#[workflow] impl Transfer { … }` with a `#[start]`, `#[step]`s and optionally `#[signal]`s, below `struct Transfer`",
        );
        let mut out = err.to_compile_error();
        out.extend(input);
        return out;
    };

    let cx = Ctxt::new();
    let wf = Workflow::from_ast(&item, args, &cx);
    check::workflow(&wf, &cx);
    // Decisions obey the rules like `#[handle]`; steps are where side effects belong.
    let rules_cx = Ctxt::new();
    let roots: Vec<_> = wf
        .starts
        .iter()
        .chain(&wf.signals)
        .map(|d| (d.method, Site::WorkflowDecision))
        .collect();
    rules::check_impl(&item, &roots, &rules_cx);
    let rule_errors = rules_cx.check().err().map(|e| e.to_compile_error());
    crate::expand::emit(cx.check(), rule_errors, || expand(&wf), || fallback(&wf))
}

fn hidden_name(step: &Step) -> syn::Ident {
    format_ident!("__factum_step_{}", step.method.sig.ident.unraw())
}

/// The user's block without markers, each step under its hidden name, and a
/// `StepRef` constant under each step's own name.
fn rewritten(wf: &Workflow) -> ItemImpl {
    let mut item = crate::expand::stripped(wf.item, is_workflow_marker);
    let mut consts = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(method) = impl_item else { continue };
        let Some(step) = wf.step(&method.sig.ident) else {
            continue;
        };
        let name = &step.method.sig.ident;
        let text = name.unraw().to_string();
        let input = step.input().map_or_else(|| quote!(()), |ty| quote!(#ty));
        let docs: Vec<_> = method.attrs.iter().filter(|a| a.path().is_ident("doc")).collect();
        let default_doc = docs
            .is_empty()
            .then(|| format!("The step `{text}`: the target of `Then::to(Self::{text}, …)`."));
        let default_doc = default_doc.iter();
        // Public whatever the method's visibility: a step's name is part of the
        // workflow's interface (tests inject failures by it, operators read it).
        consts.push(quote_spanned! {name.span()=>
            #(#docs)*
            #(#[doc = #default_doc])*
            #[allow(non_upper_case_globals)] // named like the step method it stands for
            #[allow(private_interfaces)] // the input type may be private; the constant is only compared and passed on
            pub const #name: ::factum::__private::StepRef<Self, #input> =
                ::factum::__private::StepRef::new(#text);
        });
        method.sig.ident = hidden_name(step);
        method.attrs.retain(|a| !a.path().is_ident("doc"));
        method.attrs.push(syn::parse_quote!(#[doc(hidden)]));
    }
    for c in consts {
        item.items.push(ImplItem::Verbatim(c));
    }
    item
}

fn expand(wf: &Workflow) -> TokenStream {
    let Some(ident) = wf.ident else {
        return fallback(wf);
    };
    let Some(start) = wf.starts.first() else {
        return fallback(wf);
    };
    let item = rewritten(wf);
    let ty = &wf.item.self_ty;
    let name = wf.name();
    let vis = quote!(pub);
    let signals = wf
        .signals_ident()
        .unwrap_or_else(|| format_ident!("{}Signal", ident));
    let error = wf
        .error_type()
        .map_or_else(|| quote!(::core::convert::Infallible), |e| quote!(#e));
    let start_ty = start.command();
    let start_method = &start.method.sig.ident;
    let start_call = if start.takes_context() {
        quote_spanned!(start_method.span()=> Self::#start_method(self, __command, __ctx))
    } else {
        quote_spanned!(start_method.span()=> Self::#start_method(self, __command))
    };

    let signal_types: Vec<_> = wf.signals.iter().filter_map(|d| d.command()).collect();
    let signal_variants: Vec<_> = wf
        .signals
        .iter()
        .filter_map(|d| d.command().and_then(crate::ast::type_ident))
        .collect();
    let signal_names: Vec<String> = signal_variants.iter().map(|v| v.unraw().to_string()).collect();
    let signal_arms = wf.signals.iter().zip(&signal_variants).map(|(d, variant)| {
        let m = &d.method.sig.ident;
        let call = if d.takes_context() {
            quote_spanned!(m.span()=> Self::#m(self, __c, __ctx))
        } else {
            quote_spanned!(m.span()=> Self::#m(self, __c))
        };
        quote! {
            #signals::#variant(__c) => ::factum::__private::IntoDecision::<Self, #error>::into_decision(#call),
        }
    });
    let signal_doc = format!(
        "The signals of workflow `{name}`, one variant per `#[signal]` command type (generated by `#[workflow]`)."
    );

    let step_names: Vec<String> = wf
        .steps
        .iter()
        .map(|s| s.method.sig.ident.unraw().to_string())
        .collect();
    let option_arms = wf.steps.iter().zip(&step_names).map(|(s, n)| {
        let timeout = match &s.options.timeout {
            Some((ms, _)) => quote!(::core::option::Option::Some(::core::time::Duration::from_millis(#ms))),
            None => quote!(::core::option::Option::None),
        };
        let retries = s.options.max_retries.unwrap_or(0);
        let backoff = s.options.backoff.as_ref().map_or(0, |(ms, _)| *ms);
        let failover = match &s.options.failover {
            Some(f) => {
                let f = f.unraw().to_string();
                quote!(::core::option::Option::Some(#f))
            }
            None => quote!(::core::option::Option::None),
        };
        quote! {
            #n => ::factum::__private::StepOptions {
                timeout: #timeout,
                max_retries: #retries,
                backoff: ::core::time::Duration::from_millis(#backoff),
                failover: #failover,
            },
        }
    });
    // A failover step is entered with no input: its input type must be `()`.
    let failover_asserts = wf
        .steps
        .iter()
        .filter_map(|s| s.options.failover.as_ref())
        .map(|f| {
            quote_spanned! {f.span()=>
                const _: ::factum::__private::StepRef<#ty, ()> = <#ty>::#f;
            }
        });
    // The final steps are entered with no input too.
    let final_asserts = [&wf.args.on_timeout, &wf.args.on_cancel]
        .into_iter()
        .flatten()
        .map(|f| {
            quote_spanned! {f.span()=>
                const _: ::factum::__private::StepRef<#ty, ()> = <#ty>::#f;
            }
        });
    let workflow_timeout = match &wf.args.timeout {
        Some((ms, _)) => quote!(::core::option::Option::Some(::core::time::Duration::from_millis(#ms))),
        None => quote!(::core::option::Option::None),
    };
    let final_step = |f: &Option<syn::Ident>| match f {
        Some(f) => {
            let f = f.unraw().to_string();
            quote!(::core::option::Option::Some(#f))
        }
        None => quote!(::core::option::Option::None),
    };
    let on_timeout = final_step(&wf.args.on_timeout);
    let on_cancel = final_step(&wf.args.on_cancel);
    let run_arms = wf.steps.iter().zip(&step_names).map(|(s, n)| {
        let hidden = hidden_name(s);
        let span = s.method.sig.ident.span();
        match s.input() {
            Some(input) => quote_spanned! {span=>
                #n => ::std::boxed::Box::pin(async move {
                    let __input: #input = ::factum::__private::decode_input(__step, __input)?;
                    ::factum::__private::IntoStepResult::<Self>::into_step_result(Self::#hidden(self, __ctx, __input).await)
                }),
            },
            None => quote_spanned! {span=>
                #n => ::std::boxed::Box::pin(async move {
                    let _ = __input;
                    ::factum::__private::IntoStepResult::<Self>::into_step_result(Self::#hidden(self, __ctx).await)
                }),
            },
        }
    });

    quote! {
        #item

        #[doc = #signal_doc]
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #vis enum #signals {
            #( #[allow(missing_docs)] #signal_variants(#signal_types), )*
        }

        #(
            #[automatically_derived]
            impl ::core::convert::From<#signal_types> for #signals {
                fn from(__c: #signal_types) -> Self {
                    #signals::#signal_variants(__c)
                }
            }
        )*

        const _: () = {
            #(#failover_asserts)*
            #(#final_asserts)*

            #[automatically_derived]
            impl ::factum::workflow::Workflow for #ty {
                const NAME: &'static str = #name;
                const STEPS: &'static [&'static str] = &[#(#step_names),*];
                type Start = #start_ty;
                type Signal = #signals;
                type Error = #error;

                fn start(
                    &self,
                    __command: #start_ty,
                    __ctx: &::factum::Context,
                ) -> ::core::result::Result<::factum::Then<Self>, #error> {
                    let _ = __ctx;
                    ::factum::__private::IntoDecision::<Self, #error>::into_decision(#start_call)
                }

                fn signal(
                    &self,
                    __signal: #signals,
                    __ctx: &::factum::Context,
                ) -> ::core::result::Result<::factum::Then<Self>, #error> {
                    let _ = __ctx;
                    match __signal {
                        #(#signal_arms)*
                    }
                }

                fn signal_name(__signal: &#signals) -> &'static str {
                    match *__signal {
                        #( #signals::#signal_variants(_) => #signal_names, )*
                    }
                }

                fn step_options(__step: &str) -> ::factum::__private::StepOptions {
                    match __step {
                        #(#option_arms)*
                        _ => ::core::default::Default::default(),
                    }
                }

                fn workflow_options() -> ::factum::__private::WorkflowOptions {
                    ::factum::__private::WorkflowOptions {
                        timeout: #workflow_timeout,
                        on_timeout: #on_timeout,
                        on_cancel: #on_cancel,
                    }
                }

                fn run_step<'__a>(
                    &'__a self,
                    __step: &'__a str,
                    __ctx: &'__a ::factum::StepContext,
                    __input: &'__a str,
                ) -> ::core::pin::Pin<::std::boxed::Box<
                    dyn ::core::future::Future<
                        Output = ::core::result::Result<::factum::Then<Self>, ::std::string::String>,
                    > + ::core::marker::Send + '__a,
                >> {
                    match __step {
                        #(#run_arms)*
                        _ => ::std::boxed::Box::pin(async move {
                            ::core::result::Result::Err(::std::format!(
                                "workflow `{}` has no step `{}`", #name, __step
                            ))
                        }),
                    }
                }
            }

            ::factum::__private::inventory::submit! {
                ::factum::__private::WorkflowRegistration::of::<#ty>()
            }
        };
    }
}

/// After a structure error: the user's block rewritten (so `Self::step`
/// names still resolve elsewhere), without `impl Workflow`, and with the
/// bodies of its decisions and steps replaced by `unreachable!()`: the crate
/// does not build anyway, and a body naming the undeclared step it was
/// reported for would only repeat that error in rustc's words.
fn fallback(wf: &Workflow) -> TokenStream {
    if wf.item.trait_.is_some() || wf.ident.is_none() {
        let item = crate::expand::stripped(wf.item, is_workflow_marker);
        return quote!(#item);
    }
    let marked: Vec<String> = wf
        .starts
        .iter()
        .chain(&wf.signals)
        .map(|d| d.method.sig.ident.to_string())
        .chain(wf.steps.iter().map(|s| hidden_name(s).to_string()))
        .collect();
    let mut item = rewritten(wf);
    for impl_item in &mut item.items {
        if let ImplItem::Fn(method) = impl_item
            && marked.contains(&method.sig.ident.to_string())
        {
            method.block = syn::parse_quote!({ ::core::unreachable!() });
            // The parameters the real body used are unused in the stub.
            method.attrs.push(syn::parse_quote!(#[allow(unused_variables)]));
        }
    }
    quote!(#item)
}
