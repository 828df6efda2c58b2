//! The model of a `#[workflow]` impl block: the state type, its decisions
//! (`#[start]`, `#[signal]`), its steps (`#[step]`) and the transitions their
//! bodies name, keeping the user's syn nodes for spans.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::{ToTokens, format_ident};
use syn::{FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, PatType, Type};

use super::{Output, snake_case, type_ident};
use crate::attr::{StepAttr, WorkflowArgs, WorkflowRole, workflow_role};
use crate::ctxt::Ctxt;

/// A `#[workflow]` impl block.
pub(crate) struct Workflow<'a> {
    pub item: &'a ItemImpl,
    pub ident: Option<&'a Ident>,
    pub args: WorkflowArgs,
    pub starts: Vec<Decision<'a>>,
    pub signals: Vec<Decision<'a>>,
    pub steps: Vec<Step<'a>>,
}

/// A `#[start]` or `#[signal]` method: a pure decision from a command.
pub(crate) struct Decision<'a> {
    pub method: &'a ImplItemFn,
    pub params: Vec<&'a PatType>,
    pub output: Output<'a>,
    /// The steps its body transitions to.
    pub targets: Vec<Ident>,
}

/// A `#[step]` method.
pub(crate) struct Step<'a> {
    pub method: &'a ImplItemFn,
    pub params: Vec<&'a PatType>,
    pub options: StepAttr,
    /// The steps its body transitions to.
    pub targets: Vec<Ident>,
    /// Whether its body names any move (`Then::to`, `pause`, `pause_for`, `end`, `fail`).
    pub moves: bool,
}

impl<'a> Workflow<'a> {
    pub(crate) fn from_ast(item: &'a ItemImpl, args: TokenStream, cx: &Ctxt) -> Self {
        let args = WorkflowArgs::parse(args, cx);
        let (mut starts, mut signals, mut steps) = (Vec::new(), Vec::new(), Vec::new());
        for impl_item in &item.items {
            let ImplItem::Fn(method) = impl_item else {
                continue;
            };
            let Some((role, options)) = workflow_role(&method.attrs, cx) else {
                continue;
            };
            let params: Vec<&PatType> = method
                .sig
                .inputs
                .iter()
                .filter_map(|arg| match arg {
                    FnArg::Typed(pat) => Some(pat),
                    FnArg::Receiver(_) => None,
                })
                .collect();
            let body = method.block.to_token_stream();
            let targets = transition_targets(body.clone());
            match role {
                WorkflowRole::Step => steps.push(Step {
                    method,
                    params,
                    options,
                    targets,
                    moves: names_a_move(body),
                }),
                WorkflowRole::Start | WorkflowRole::Signal => {
                    let decision = Decision {
                        method,
                        params,
                        output: Output::of(&method.sig.output),
                        targets,
                    };
                    if role == WorkflowRole::Start {
                        starts.push(decision);
                    } else {
                        signals.push(decision);
                    }
                }
            }
        }
        Workflow {
            item,
            ident: type_ident(&item.self_ty),
            args,
            starts,
            signals,
            steps,
        }
    }

    /// The stable name: `name = "…"` or the type's ident in snake_case.
    pub(crate) fn name(&self) -> String {
        match (&self.args.name, self.ident) {
            (Some(lit), _) => lit.value(),
            (None, Some(ident)) => snake_case(&ident.to_string()),
            (None, None) => String::new(),
        }
    }

    /// The signal enum's ident: `signals = …` or `<Type>Signal`.
    pub(crate) fn signals_ident(&self) -> Option<Ident> {
        self.args
            .signals
            .clone()
            .or_else(|| self.ident.map(|i| format_ident!("{}Signal", i)))
    }

    /// The decisions' error type, when one is written: `error = …`, else the
    /// first fallible decision's. `None` means `Infallible`.
    pub(crate) fn error_type(&self) -> Option<&Type> {
        self.args.error.as_ref().or_else(|| {
            self.starts
                .iter()
                .chain(&self.signals)
                .find_map(|d| match d.output {
                    Output::Result { err, .. } => Some(err),
                    _ => None,
                })
        })
    }

    pub(crate) fn step(&self, name: &Ident) -> Option<&Step<'a>> {
        self.steps.iter().find(|s| s.method.sig.ident == *name)
    }
}

impl<'a> Decision<'a> {
    /// The command type: the first parameter after `&self`.
    pub(crate) fn command(&self) -> Option<&'a Type> {
        self.params.first().map(|p| &*p.ty)
    }

    /// Whether it takes a `&Context` after the command.
    pub(crate) fn takes_context(&self) -> bool {
        self.params.len() >= 2
    }
}

impl<'a> Step<'a> {
    /// The step's input type: the parameter after the context; `()` when absent.
    pub(crate) fn input(&self) -> Option<&'a Type> {
        self.params.get(1).map(|p| &*p.ty)
    }
}

/// The targets a body names: `Self::x` as the first argument of a call to
/// `…to(…)` or the second of `…pause_for(…)`, in the tokens (so inside macro
/// arguments too). A target held in a variable is not seen; the compiler
/// still checks its type.
fn transition_targets(body: TokenStream) -> Vec<Ident> {
    let mut out = Vec::new();
    scan(body, &mut |tokens| {
        for window in tokens.windows(2) {
            let (TokenTree::Ident(callee), TokenTree::Group(args)) = (&window[0], &window[1]) else {
                continue;
            };
            if args.delimiter() != Delimiter::Parenthesis {
                continue;
            }
            let position = if callee == "to" {
                0
            } else if callee == "pause_for" {
                1
            } else {
                continue;
            };
            if let Some(target) = argument(args.stream(), position).and_then(self_path) {
                out.push(target);
            }
        }
    });
    out
}

/// Whether a body names a move: `Then::to`, `Then::pause`, `Then::pause_for`,
/// `Then::end` or `Then::fail`.
fn names_a_move(body: TokenStream) -> bool {
    let mut found = false;
    scan(body, &mut |tokens| {
        for w in tokens.windows(4) {
            if let (TokenTree::Ident(then), TokenTree::Punct(a), TokenTree::Punct(b), TokenTree::Ident(m)) =
                (&w[0], &w[1], &w[2], &w[3])
                && then == "Then"
                && a.as_char() == ':'
                && b.as_char() == ':'
                && ["to", "pause", "pause_for", "end", "fail"].iter().any(|n| m == n)
            {
                found = true;
            }
        }
    });
    found
}

/// Calls `f` on the token list of every group level of `tokens`.
fn scan(tokens: TokenStream, f: &mut impl FnMut(&[TokenTree])) {
    let list: Vec<TokenTree> = tokens.into_iter().collect();
    f(&list);
    for t in &list {
        if let TokenTree::Group(g) = t {
            scan(g.stream(), f);
        }
    }
}

/// The `n`-th top-level comma-separated argument of a call's tokens.
fn argument(args: TokenStream, n: usize) -> Option<Vec<TokenTree>> {
    let mut parts: Vec<Vec<TokenTree>> = vec![Vec::new()];
    for t in args {
        match &t {
            TokenTree::Punct(p) if p.as_char() == ',' => parts.push(Vec::new()),
            _ => parts.last_mut()?.push(t),
        }
    }
    parts.into_iter().nth(n)
}

/// `x` when the tokens are exactly `Self::x`.
fn self_path(tokens: Vec<TokenTree>) -> Option<Ident> {
    match &tokens[..] {
        [
            TokenTree::Ident(s),
            TokenTree::Punct(a),
            TokenTree::Punct(b),
            TokenTree::Ident(x),
        ] if s == "Self" && a.as_char() == ':' && b.as_char() == ':' => Some(x.clone()),
        _ => None,
    }
}
