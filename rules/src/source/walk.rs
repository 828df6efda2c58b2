//! The crate-wide body walk: like the macro's, it finds every path, method
//! call, macro and `unsafe` block a body runs, but it resolves each path
//! through the crate's modules, so it also knows which calls go to the
//! crate's own functions and methods, to be followed.
//!
//! Nested items in a body are not walked (their own scope), and a `use` or
//! an item declared in a block applies to that block, as in the macro.

use std::collections::{HashMap, HashSet};

use proc_macro2::{Delimiter, Spacing, Span, TokenStream, TokenTree};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{Expr, ExprCall, ExprMethodCall, ExprPath, ExprUnsafe, Item, Macro, Pat, Stmt, Token};

use super::load::{Crate, FnDef, path_names, use_tree};
use super::resolve::{is_known, resolve};
use crate::Seen;

/// What one body does, in the order it is written.
#[derive(Default)]
pub(super) struct Body {
    pub found: Vec<Found>,
    pub calls: Vec<Call>,
}

/// One thing a rule may forbid.
pub(super) struct Found {
    /// What it is, by its full path.
    pub seen: Seen,
    /// As written, when that is not the full path.
    pub written: Option<String>,
    pub called: bool,
    pub span: Span,
}

/// A call to one of the crate's own functions or methods.
pub(super) struct Call {
    /// Its key in `Crate::fns` or `Crate::methods`.
    pub key: Vec<String>,
    /// The call as a link of a chain: `self.stamp()`, `helpers::stamp()`.
    pub link: String,
}

/// Where a path leads.
enum Target {
    /// One of the crate's functions or methods, by key.
    Own(Vec<String>),
    /// Outside the crate, by full path.
    External(Vec<String>),
    /// A local value, or an item of the crate the walk cannot enter.
    Nothing,
}

#[derive(Default)]
struct Scope {
    /// `use` items of the block (`Some(path as written)`) and items it declares (`None`).
    items: HashMap<String, Option<Vec<String>>>,
    /// Names bound by `let` (and the parameters, in the outermost scope).
    values: HashSet<String>,
}

/// Walks the body of `def`.
pub(super) fn walk(krate: &Crate, def: &FnDef) -> Body {
    let mut walker = Walker {
        krate,
        def,
        scopes: vec![Scope {
            items: HashMap::new(),
            values: def.params.iter().cloned().collect(),
        }],
        body: Body::default(),
    };
    walker.visit_block(&def.block);
    walker.body
}

struct Walker<'a> {
    krate: &'a Crate,
    def: &'a FnDef,
    scopes: Vec<Scope>,
    body: Body,
}

impl Walker<'_> {
    /// Where `names` leads, from this body.
    fn target(&self, names: &[String], leading_colon: bool, called: bool) -> Target {
        let Some(first) = names.first() else {
            return Target::Nothing;
        };
        if leading_colon {
            return Target::External(names.to_vec());
        }
        if first == "self" && names.len() == 1 {
            return Target::Nothing;
        }
        if first == "Self" {
            let Some(self_ty) = &self.def.self_ty else {
                return Target::Nothing;
            };
            let mut full = self_ty.clone();
            full.extend(names[1..].iter().cloned());
            return self.classify(full);
        }
        for scope in self.scopes.iter().rev() {
            if names.len() == 1 && scope.values.contains(first) {
                return Target::Nothing;
            }
            match scope.items.get(first) {
                Some(Some(path)) => {
                    let mut written = path.clone();
                    written.extend(names[1..].iter().cloned());
                    return self.classify(resolve(self.krate, self.def.module, &written));
                }
                Some(None) => return Target::Nothing,
                None => {}
            }
        }
        let full = resolve(self.krate, self.def.module, names);
        // A bare name only an external glob supplies: taken as the glob's
        // only when called, since a local binding the walk does not track
        // (a closure or `match` binding) reads the same.
        let from_external_glob = names.len() == 1
            && full.len() > 1
            && full[0] != "crate"
            && !is_known(self.krate, self.def.module, first);
        if from_external_glob && !called {
            return Target::Nothing;
        }
        self.classify(full)
    }

    fn classify(&self, full: Vec<String>) -> Target {
        if self.krate.fns.contains_key(&full) || self.krate.methods.contains_key(&full) {
            Target::Own(full)
        } else if full.first().is_some_and(|first| first == "crate") {
            Target::Nothing
        } else {
            Target::External(full)
        }
    }

    fn path(&mut self, names: Vec<String>, text: String, leading_colon: bool, called: bool, span: Span) {
        match self.target(&names, leading_colon, called) {
            Target::Own(key) => {
                let call = if called { "()" } else { "" };
                self.body.calls.push(Call {
                    key,
                    link: format!("{text}{call}"),
                });
            }
            Target::External(full) => {
                let written = (full != names).then_some(text);
                self.body.found.push(Found {
                    seen: Seen::Path(full),
                    written,
                    called,
                    span,
                });
            }
            Target::Nothing => {}
        }
    }

    fn method_call(&mut self, receiver: Vec<String>, method: String, span: Span) {
        if receiver == ["self"] {
            if let Some(self_ty) = &self.def.self_ty {
                let mut key = self_ty.clone();
                key.push(method.clone());
                if self.krate.methods.contains_key(&key) {
                    self.body.calls.push(Call {
                        key,
                        link: format!("self.{method}()"),
                    });
                }
            }
            return;
        }
        if let Target::External(full) = self.target(&receiver, false, false) {
            let written = (full != receiver).then(|| format!("{}.{method}()", receiver.join("::")));
            self.body.found.push(Found {
                seen: Seen::Method {
                    receiver: full,
                    method,
                },
                written,
                called: false,
                span,
            });
        }
    }

    fn mac(&mut self, names: Vec<String>, span: Span) {
        if let Target::External(full) = self.target(&names, false, true) {
            let written = (full != names).then(|| format!("{}!", names.join("::")));
            self.body.found.push(Found {
                seen: Seen::Macro(full),
                written,
                called: false,
                span,
            });
        }
    }

    fn unsafe_block(&mut self, span: Span) {
        self.body.found.push(Found {
            seen: Seen::Unsafe,
            written: None,
            called: false,
            span,
        });
    }

    /// Macro tokens that do not parse as expressions, scanned for paths,
    /// method calls on paths, macro names and `unsafe` blocks.
    fn scan_tokens(&mut self, tokens: TokenStream) {
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
                        self.unsafe_block(ident.span());
                    }
                    i += 1;
                }
                TokenTree::Ident(_) if after_dot => i += 1,
                TokenTree::Ident(_) | TokenTree::Punct(_) if path_start(&trees, i) => {
                    let leading_colon = is_path_sep(&trees, i);
                    let (names, end) = path_at(&trees, i);
                    let span = trees[i].span();
                    if trees.get(end).is_some_and(|t| is_punct(t, '!')) {
                        self.mac(names, span);
                    } else if let (Some(dot), Some(TokenTree::Ident(method))) =
                        (trees.get(end), trees.get(end + 1))
                        && is_punct(dot, '.')
                    {
                        let method = method.to_string();
                        if names != ["self"] {
                            let text = names.join("::");
                            self.path(names.clone(), text, leading_colon, false, span);
                        }
                        self.method_call(names, method, span);
                    } else {
                        let called = matches!(trees.get(end), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis);
                        let text = names.join("::");
                        self.path(names, text, leading_colon, called, span);
                    }
                    i = end;
                }
                _ => i += 1,
            }
        }
    }
}

impl<'ast> Visit<'ast> for Walker<'_> {
    fn visit_item(&mut self, _: &'ast Item) {}

    fn visit_block(&mut self, block: &'ast syn::Block) {
        let mut scope = Scope::default();
        for stmt in &block.stmts {
            if let Stmt::Item(item) = stmt {
                declare(item, &mut scope.items);
            }
        }
        self.scopes.push(scope);
        for stmt in &block.stmts {
            self.visit_stmt(stmt);
            if let Stmt::Local(local) = stmt {
                let mut bound = Vec::new();
                bindings(&local.pat, &mut bound);
                if let Some(scope) = self.scopes.last_mut() {
                    scope.values.extend(bound);
                }
            }
        }
        self.scopes.pop();
    }

    fn visit_expr_path(&mut self, expr: &'ast ExprPath) {
        self.path(
            expr_path_names(expr),
            written(expr),
            leading_colon(expr),
            false,
            expr.span(),
        );
        visit::visit_expr_path(self, expr);
    }

    fn visit_expr_call(&mut self, call: &'ast ExprCall) {
        let Expr::Path(func) = &*call.func else {
            return visit::visit_expr_call(self, call);
        };
        self.path(
            expr_path_names(func),
            written(func),
            leading_colon(func),
            true,
            func.span(),
        );
        visit::visit_expr_path(self, func);
        for arg in &call.args {
            self.visit_expr(arg);
        }
    }

    fn visit_expr_method_call(&mut self, call: &'ast ExprMethodCall) {
        if let Expr::Path(receiver) = &*call.receiver {
            self.method_call(
                expr_path_names(receiver),
                call.method.to_string(),
                receiver.span(),
            );
        }
        visit::visit_expr_method_call(self, call);
    }

    fn visit_expr_unsafe(&mut self, expr: &'ast ExprUnsafe) {
        self.unsafe_block(expr.unsafe_token.span);
        visit::visit_expr_unsafe(self, expr);
    }

    fn visit_macro(&mut self, mac: &'ast Macro) {
        self.mac(path_names(&mac.path), mac.path.span());
        match mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated) {
            Ok(args) => args.iter().for_each(|arg| self.visit_expr(arg)),
            Err(_) => self.scan_tokens(mac.tokens.clone()),
        }
    }
}

/// The names an item declared in a block brings into scope.
fn declare(item: &Item, items: &mut HashMap<String, Option<Vec<String>>>) {
    let ident = match item {
        Item::Use(item) => {
            let (mut uses, mut globs) = (HashMap::new(), Vec::new());
            use_tree(&item.tree, Vec::new(), &mut uses, &mut globs);
            items.extend(uses.into_iter().map(|(name, path)| (name, Some(path))));
            return;
        }
        Item::Const(item) => &item.ident,
        Item::Enum(item) => &item.ident,
        Item::Fn(item) => &item.sig.ident,
        Item::Mod(item) => &item.ident,
        Item::Static(item) => &item.ident,
        Item::Struct(item) => &item.ident,
        Item::Trait(item) => &item.ident,
        Item::Type(item) => &item.ident,
        Item::Union(item) => &item.ident,
        Item::Macro(item) => match &item.ident {
            Some(ident) => ident,
            None => return,
        },
        _ => return,
    };
    items.insert(ident.to_string(), None);
}

fn bindings(pat: &Pat, out: &mut Vec<String>) {
    struct Bindings<'o>(&'o mut Vec<String>);
    impl<'ast> Visit<'ast> for Bindings<'_> {
        fn visit_pat_ident(&mut self, pat: &'ast syn::PatIdent) {
            self.0.push(pat.ident.to_string());
            visit::visit_pat_ident(self, pat);
        }
    }
    Bindings(out).visit_pat(pat);
}

fn leading_colon(expr: &ExprPath) -> bool {
    expr.qself.is_none() && expr.path.leading_colon.is_some()
}

fn written(expr: &ExprPath) -> String {
    let path = path_names(&expr.path).join("::");
    match &expr.qself {
        Some(qself) => match &*qself.ty {
            syn::Type::Path(ty) => format!("<{}>::{path}", path_names(&ty.path).join("::")),
            _ => path,
        },
        None if expr.path.leading_colon.is_some() => format!("::{path}"),
        None => path,
    }
}

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

fn is_path_sep(trees: &[TokenTree], i: usize) -> bool {
    matches!(trees.get(i), Some(TokenTree::Punct(p)) if p.as_char() == ':' && p.spacing() == Spacing::Joint)
        && trees.get(i + 1).is_some_and(|t| is_punct(t, ':'))
}

fn path_start(trees: &[TokenTree], i: usize) -> bool {
    match &trees[i] {
        TokenTree::Ident(_) => true,
        TokenTree::Punct(_) => is_path_sep(trees, i) && matches!(trees.get(i + 2), Some(TokenTree::Ident(_))),
        _ => false,
    }
}

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
