//! The body walk: finds every path, method call, macro and `unsafe` block a
//! handler body runs, and asks each rule about it.
//!
//! It stays inside the body's own code: nested items (a `fn`, `impl` or `mod`
//! declared in the body) are their own scope and are not walked. Macro
//! arguments are walked as expressions where they parse and scanned as tokens
//! where they do not. Model: async-trait `src/receiver.rs`.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Expr, ExprMethodCall, ExprPath, ExprUnsafe, Item, Macro, Token};

use super::{Seen, Site, clock, random, side_effects};
use crate::ctxt::Ctxt;

/// Walks `body` and reports every violation to `cx`.
pub(super) fn walk_block(body: &syn::Block, site: Site, cx: &Ctxt) {
    Walker { site, cx }.visit_block(body);
}

struct Walker<'a> {
    site: Site,
    cx: &'a Ctxt,
}

impl Walker<'_> {
    /// Asks every rule about `seen`; each one that forbids it reports an error on `tokens`.
    fn judge(&self, seen: &Seen<'_>, tokens: &dyn ToTokens) {
        let judges: [fn(&Seen<'_>, Site) -> Option<String>; 3] =
            [clock::judge, random::judge, side_effects::judge];
        for judge in judges {
            if let Some(message) = judge(seen, self.site) {
                self.cx.error_spanned_by(tokens, message);
            }
        }
    }

    /// Scans tokens that do not parse as expressions for forbidden path
    /// sequences, method calls on paths, macro names and `unsafe` blocks.
    fn scan_tokens(&self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < trees.len() {
            let after_dot = i > 0 && is_punct(&trees[i - 1], '.');
            match &trees[i] {
                TokenTree::Group(group) => {
                    self.scan_tokens(group.stream());
                    i += 1;
                }
                TokenTree::Ident(ident) if ident == "unsafe" => {
                    if matches!(trees.get(i + 1), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace)
                    {
                        self.judge(&Seen::Unsafe, ident);
                    }
                    i += 1;
                }
                // A method or field name (`ctx.now`) is not a path.
                TokenTree::Ident(_) if after_dot => i += 1,
                TokenTree::Ident(_) | TokenTree::Punct(_) if path_start(&trees, i) => {
                    let (names, end) = path_at(&trees, i);
                    let span: TokenStream = trees[i..end].iter().cloned().collect();
                    if trees.get(end).is_some_and(|t| is_punct(t, '!')) {
                        let bang: TokenStream = trees[i..=end].iter().cloned().collect();
                        self.judge(&Seen::Macro(&names), &bang);
                    } else {
                        self.judge(&Seen::Path(&names), &span);
                        // Written without let-chains: the workspace's rust-version is 1.85.
                        let method = match (trees.get(end), trees.get(end + 1)) {
                            (Some(dot), Some(TokenTree::Ident(method))) if is_punct(dot, '.') => Some(method),
                            _ => None,
                        };
                        if let Some(method) = method {
                            let call: TokenStream = trees[i..end + 2].iter().cloned().collect();
                            let method = method.to_string();
                            self.judge(
                                &Seen::Method {
                                    receiver: &names,
                                    method: &method,
                                },
                                &call,
                            );
                        }
                    }
                    i = end;
                }
                _ => i += 1,
            }
        }
    }
}

impl<'ast> Visit<'ast> for Walker<'_> {
    /// A nested `fn`, `impl`, `mod` … is its own scope, not part of this body.
    fn visit_item(&mut self, _: &'ast Item) {}

    fn visit_expr_path(&mut self, expr: &'ast ExprPath) {
        self.judge(&Seen::Path(&expr_path_names(expr)), expr);
        visit::visit_expr_path(self, expr);
    }

    fn visit_expr_method_call(&mut self, call: &'ast ExprMethodCall) {
        if let Expr::Path(receiver) = &*call.receiver {
            let names = expr_path_names(receiver);
            let method = call.method.to_string();
            let tokens = {
                let (dot, name) = (&call.dot_token, &call.method);
                quote!(#receiver #dot #name)
            };
            self.judge(
                &Seen::Method {
                    receiver: &names,
                    method: &method,
                },
                &tokens,
            );
        }
        visit::visit_expr_method_call(self, call);
    }

    fn visit_expr_unsafe(&mut self, expr: &'ast ExprUnsafe) {
        self.judge(&Seen::Unsafe, &expr.unsafe_token);
        visit::visit_expr_unsafe(self, expr);
    }

    fn visit_macro(&mut self, mac: &'ast Macro) {
        let names = path_names(&mac.path);
        let (path, bang) = (&mac.path, &mac.bang_token);
        self.judge(&Seen::Macro(&names), &quote!(#path #bang));
        match mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated) {
            Ok(args) => args.iter().for_each(|arg| self.visit_expr(arg)),
            Err(_) => self.scan_tokens(mac.tokens.clone()),
        }
    }
}

fn path_names(path: &syn::Path) -> Vec<String> {
    path.segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect()
}

/// The names of an expression path; `<SystemTime>::now` reads as `SystemTime::now`.
fn expr_path_names(expr: &ExprPath) -> Vec<String> {
    let mut names = match &expr.qself {
        Some(qself) if qself.position == 0 => match &*qself.ty {
            syn::Type::Path(ty) => path_names(&ty.path),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    names.extend(path_names(&expr.path));
    names
}

fn is_punct(tree: &TokenTree, ch: char) -> bool {
    matches!(tree, TokenTree::Punct(p) if p.as_char() == ch)
}

/// `::` at `i`: a joint `:` followed by `:`.
fn is_path_sep(trees: &[TokenTree], i: usize) -> bool {
    matches!(trees.get(i), Some(TokenTree::Punct(p)) if p.as_char() == ':' && p.spacing() == Spacing::Joint)
        && trees.get(i + 1).is_some_and(|t| is_punct(t, ':'))
}

/// Whether a path starts at `i`: an identifier, or `::` followed by one.
fn path_start(trees: &[TokenTree], i: usize) -> bool {
    match &trees[i] {
        TokenTree::Ident(_) => true,
        TokenTree::Punct(_) => is_path_sep(trees, i) && matches!(trees.get(i + 2), Some(TokenTree::Ident(_))),
        _ => false,
    }
}

/// The segment names of the path starting at `i`, and the index just past it.
/// Stops before a turbofish (`rand::random::<u64>` reads as `rand::random`).
fn path_at(trees: &[TokenTree], mut i: usize) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    if is_path_sep(trees, i) {
        i += 2;
    }
    while let Some(TokenTree::Ident(ident)) = trees.get(i) {
        names.push(ident.to_string());
        i += 1;
        if is_path_sep(trees, i) && matches!(trees.get(i + 2), Some(TokenTree::Ident(_))) {
            i += 2;
        } else {
            break;
        }
    }
    (names, i)
}
