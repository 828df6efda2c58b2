//! `#[workflow(…)]` and its method markers: `#[start]`, `#[signal]`,
//! `#[step(timeout = "30s", max_retries = 3, backoff = "1s", failover = other_step)]`.

use proc_macro2::TokenStream;
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, Ident, LitInt, LitStr, Type};

use super::{Slot, path_str, skip_value, value};
use crate::ctxt::Ctxt;

/// `#[workflow(name = "…", error = Type, signals = Ident, timeout = "15m",
/// on_timeout = step, on_cancel = step)]`.
pub(crate) struct WorkflowArgs {
    /// The workflow's stable name; the type's ident in snake_case when absent.
    pub name: Option<LitStr>,
    /// The rejection type of the decisions; the first fallible decision's error when absent.
    pub error: Option<Type>,
    /// The generated signal enum's name; `<Type>Signal` when absent.
    pub signals: Option<Ident>,
    /// `timeout = "15m"`: the workflow-wide timeout, in milliseconds, with the literal for spans.
    pub timeout: Option<(u64, LitStr)>,
    /// `on_timeout = step`: the final step once the timeout passed.
    pub on_timeout: Option<Ident>,
    /// `on_cancel = step`: the compensation a cancel runs.
    pub on_cancel: Option<Ident>,
}

/// A step named in a workflow option: `release` or `Self::release`.
fn step_name(input: ParseStream<'_>, key: &str) -> syn::Result<Ident> {
    let path: syn::Path = input.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("`{key}` names a step of this workflow: write `{key} = release` (or `Self::release`)"),
        )
    })?;
    let segments: Vec<&syn::PathSegment> = path.segments.iter().collect();
    match &segments[..] {
        [only] if path.leading_colon.is_none() && only.arguments.is_none() => Ok(only.ident.clone()),
        [this, step] if this.ident == "Self" && step.arguments.is_none() => Ok(step.ident.clone()),
        _ => Err(syn::Error::new_spanned(
            &path,
            format!("`{key}` names a step of this workflow: write `{key} = release` (or `Self::release`)"),
        )),
    }
}

impl WorkflowArgs {
    /// Reads the arguments of `#[workflow(…)]`, every key past mistakes.
    pub(crate) fn parse(args: TokenStream, cx: &Ctxt) -> Self {
        let mut name = Slot::new(cx, "workflow", "name");
        let mut error = Slot::new(cx, "workflow", "error");
        let mut signals = Slot::new(cx, "workflow", "signals");
        let mut timeout = Slot::new(cx, "workflow", "timeout");
        let mut on_timeout = Slot::new(cx, "workflow", "on_timeout");
        let mut on_cancel = Slot::new(cx, "workflow", "on_cancel");
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("name") {
                if let Some(lit) = value(&meta, cx, |input| input.parse::<LitStr>())? {
                    name.set(&meta.path, lit);
                }
            } else if meta.path.is_ident("error") {
                if let Some(ty) = value(&meta, cx, |input| input.parse::<Type>())? {
                    error.set(&meta.path, ty);
                }
            } else if meta.path.is_ident("signals") {
                if let Some(ident) = value(&meta, cx, |input| input.parse::<Ident>())? {
                    signals.set(&meta.path, ident);
                }
            } else if meta.path.is_ident("timeout") {
                if let Some(lit) = value(&meta, cx, |input| input.parse::<LitStr>())? {
                    match parse_duration(&lit.value()) {
                        Ok(0) => cx.error_spanned_by(
                            &lit,
                            "a workflow's timeout must be above zero; leave `timeout` out for no limit",
                        ),
                        Ok(ms) => timeout.set(&meta.path, (ms, lit)),
                        Err(reason) => cx.error_spanned_by(&lit, format!("`timeout`: {reason}")),
                    }
                }
            } else if meta.path.is_ident("on_timeout") {
                if let Some(ident) = value(&meta, cx, |input| step_name(input, "on_timeout"))? {
                    on_timeout.set(&meta.path, ident);
                }
            } else if meta.path.is_ident("on_cancel") {
                if let Some(ident) = value(&meta, cx, |input| step_name(input, "on_cancel"))? {
                    on_cancel.set(&meta.path, ident);
                }
            } else {
                cx.error_spanned_by(
                    &meta.path,
                    format!(
                        "unknown key `{}` in `#[workflow(…)]`: expected `name = \"…\"`, `error = Type`, `signals = EnumName`, `timeout = \"15m\"`, `on_timeout = step` or `on_cancel = step`",
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
        WorkflowArgs {
            name: name.get(),
            error: error.get(),
            signals: signals.get(),
            timeout: timeout.get(),
            on_timeout: on_timeout.get(),
            on_cancel: on_cancel.get(),
        }
    }
}

/// What a method of a `#[workflow]` block is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum WorkflowRole {
    /// `#[start]`: decides the first move from the start command.
    Start,
    /// `#[signal]`: decides a paused instance's next move from a signal.
    Signal,
    /// `#[step]`: does the work and returns the next move.
    Step,
}

impl WorkflowRole {
    pub(crate) fn attr_name(self) -> &'static str {
        match self {
            WorkflowRole::Start => "start",
            WorkflowRole::Signal => "signal",
            WorkflowRole::Step => "step",
        }
    }
}

/// True for the marker attributes `#[workflow]` consumes.
pub(crate) fn is_workflow_marker(attr: &Attribute) -> bool {
    ["start", "signal", "step"]
        .iter()
        .any(|m| attr.path().is_ident(m))
}

/// `#[step(…)]`'s options, as written.
#[derive(Default)]
pub(crate) struct StepAttr {
    /// `timeout = "30s"`, in milliseconds, with the literal for spans.
    pub timeout: Option<(u64, LitStr)>,
    pub max_retries: Option<u32>,
    /// `backoff = "1s"`, in milliseconds.
    pub backoff: Option<(u64, LitStr)>,
    /// `failover = other_step`.
    pub failover: Option<Ident>,
}

/// The role of a method and, for a step, its options. Repeats and two roles
/// on one method are errors; the first marker decides the role.
pub(crate) fn workflow_role(attrs: &[Attribute], cx: &Ctxt) -> Option<(WorkflowRole, StepAttr)> {
    let mut found: Option<(WorkflowRole, StepAttr)> = None;
    for attr in attrs.iter().filter(|a| is_workflow_marker(a)) {
        let role = if attr.path().is_ident("start") {
            WorkflowRole::Start
        } else if attr.path().is_ident("signal") {
            WorkflowRole::Signal
        } else {
            WorkflowRole::Step
        };
        if let Some((first, _)) = &found {
            cx.error_spanned_by(
                attr,
                if *first == role {
                    format!("`#[{}]` is given twice: give it once", role.attr_name())
                } else {
                    format!(
                        "a method has one role in a workflow (`#[start]`, `#[signal]` or `#[step]`), and this one is already `#[{}]`",
                        first.attr_name()
                    )
                },
            );
            continue;
        }
        let options = match role {
            WorkflowRole::Step => step_attr(attr, cx),
            _ => {
                if !matches!(attr.meta, syn::Meta::Path(_)) {
                    cx.error_spanned_by(
                        attr,
                        format!(
                            "`#[{0}]` takes no arguments (the command type is the parameter's): write `#[{0}]`",
                            role.attr_name()
                        ),
                    );
                }
                StepAttr::default()
            }
        };
        found = Some((role, options));
    }
    found
}

fn step_attr(attr: &Attribute, cx: &Ctxt) -> StepAttr {
    let mut timeout = Slot::new(cx, "step", "timeout");
    let mut max_retries = Slot::new(cx, "step", "max_retries");
    let mut backoff = Slot::new(cx, "step", "backoff");
    let mut failover = Slot::new(cx, "step", "failover");
    match &attr.meta {
        syn::Meta::Path(_) => {}
        syn::Meta::NameValue(_) => cx.error_spanned_by(
            attr,
            "`#[step]` takes options in parentheses: `#[step(timeout = \"30s\", max_retries = 3, backoff = \"1s\", failover = other_step)]`",
        ),
        syn::Meta::List(_) => {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("timeout") || meta.path.is_ident("backoff") {
                    let key = if meta.path.is_ident("timeout") { "timeout" } else { "backoff" };
                    if let Some(lit) = value(&meta, cx, |input| input.parse::<LitStr>())? {
                        match parse_duration(&lit.value()) {
                            Ok(ms) if key == "timeout" && ms == 0 => cx.error_spanned_by(
                                &lit,
                                "a step's timeout must be above zero; leave `timeout` out for no limit",
                            ),
                            Ok(ms) if key == "timeout" => timeout.set(&meta.path, (ms, lit)),
                            Ok(ms) => backoff.set(&meta.path, (ms, lit)),
                            Err(reason) => cx.error_spanned_by(&lit, format!("`{key}`: {reason}")),
                        }
                    }
                } else if meta.path.is_ident("max_retries") {
                    let number = |input: ParseStream<'_>| {
                        input.parse::<LitInt>().map_err(|e| {
                            syn::Error::new(e.span(), "`max_retries` is how often a failed step is tried again: write `max_retries = 3`")
                        })
                    };
                    if let Some(lit) = value(&meta, cx, number)? {
                        match lit.base10_parse::<u32>() {
                            Ok(n) => max_retries.set(&meta.path, n),
                            Err(e) => cx.syn_error(e),
                        }
                    }
                } else if meta.path.is_ident("failover") {
                    let step = |input: ParseStream<'_>| {
                        input.parse::<Ident>().map_err(|e| {
                            syn::Error::new(e.span(), "`failover` names the step to enter once the retries are spent: write `failover = refund`")
                        })
                    };
                    if let Some(ident) = value(&meta, cx, step)? {
                        failover.set(&meta.path, ident);
                    }
                } else {
                    cx.error_spanned_by(
                        &meta.path,
                        format!(
                            "unknown key `{}` in `#[step(…)]`: expected `timeout = \"30s\"`, `max_retries = N`, `backoff = \"1s\"` or `failover = other_step`",
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
    }
    StepAttr {
        timeout: timeout.get(),
        max_retries: max_retries.get(),
        backoff: backoff.get(),
        failover: failover.get(),
    }
}

/// `"500ms"`, `"30s"`, `"5m"`, `"2h"`, `"1d"` in milliseconds.
fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || {
        format!(
            "{text:?} is not a duration: write a whole number and a unit, `500ms`, `30s`, `5m`, `2h` or `1d`"
        )
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    let per = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(per).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_parse_in_every_unit_and_refuse_the_rest() {
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("30s"), Ok(30_000));
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("2h"), Ok(7_200_000));
        assert_eq!(parse_duration("1d"), Ok(86_400_000));
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5 weeks").is_err());
    }
}
