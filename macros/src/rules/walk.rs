//! The body walk: finds every path, method call, macro and `unsafe` block a
//! body runs, and every call it makes to another method of its impl block.
//!
//! It stays inside the body's own code: nested items (a `fn`, `impl` or `mod`
//! declared in the body) are their own scope and are not walked. Macro
//! arguments are walked as expressions where they parse and scanned as tokens
//! where they do not. Model: async-trait `src/receiver.rs`.
//!
//! Paths are read through the `use` items of the blocks around them
//! (`use std::time::SystemTime as T;` makes `T::now` read as
//! `std::time::SystemTime::now`), and an item declared in a block, or a `let`
//! for a one-segment path, hides a `use` of the same name from outer blocks.
//! Module-level `use` items are outside the macro's input, so out of sight.

use std::collections::{HashMap, HashSet};

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Expr, ExprCall, ExprMethodCall, ExprPath, ExprUnsafe, Item, Macro, Pat, Stmt, Token, UseTree};

use super::Seen;

/// What one body does, in the order it is written.
#[derive(Default)]
pub(super) struct Body {
    /// Everything a rule may forbid.
    pub found: Vec<Found>,
    /// Calls to other methods of the same impl block.
    pub calls: Vec<Call>,
}

/// One thing a rule may forbid, with the tokens that wrote it.
pub(super) struct Found {
    /// What it is, by the paths a `use` gives it.
    pub seen: Seen,
    /// As written, when a `use` in the body gave it another path.
    pub written: Option<String>,
    /// Whether a path was called (`now()`), for the call chain's last link.
    pub called: bool,
    pub tokens: TokenStream,
}

/// A call to a method of the same impl block: `self.stamp()`, `Self::roll()`.
pub(super) struct Call {
    /// The method's name.
    pub method: String,
    /// The call as a link of a chain: `self.stamp()`.
    pub link: String,
    /// The user's tokens of the call, which a violation it reaches is spanned on.
    pub tokens: TokenStream,
}

/// What the walk knows of the impl block around the body.
pub(super) struct Sight<'a> {
    /// The names of the block's methods.
    pub methods: HashSet<String>,
    /// The impl's self type, so `Account::stamp(self)` is seen as `Self::stamp`.
    pub self_ident: Option<&'a syn::Ident>,
}

/// Walks `body` and returns what it does.
pub(super) fn walk_block(body: &syn::Block, sight: &Sight<'_>) -> Body {
    let mut walker = Walker {
        sight,
        scopes: Vec::new(),
        body: Body::default(),
    };
    walker.visit_block(body);
    walker.body
}

/// The names one block brings into scope.
#[derive(Default)]
struct Scope {
    /// By a `use` (`Some(full path)`), or by an item declared in the block,
    /// which hides a `use` from outer blocks (`None`).
    items: HashMap<String, Option<Vec<String>>>,
    /// Bound by a `let` earlier in the block: these hide a one-segment path.
    values: HashSet<String>,
}

struct Walker<'a> {
    sight: &'a Sight<'a>,
    scopes: Vec<Scope>,
    body: Body,
}

impl Walker<'_> {
    /// Records `seen`, written as `names` (before `use` resolution).
    fn found(&mut self, seen: Seen, written: Option<String>, called: bool, tokens: &dyn ToTokens) {
        self.body.found.push(Found {
            seen,
            written,
            called,
            tokens: tokens.to_token_stream(),
        });
    }

    /// The full path `names` stands for, when a `use` of an enclosing block
    /// renames its first segment; `None` when it reads as written.
    fn resolve(&self, names: &[String]) -> Option<Vec<String>> {
        let first = names.first()?;
        for scope in self.scopes.iter().rev() {
            if names.len() == 1 && scope.values.contains(first) {
                return None;
            }
            if let Some(entry) = scope.items.get(first) {
                let mut full = entry.clone()?;
                full.extend(names[1..].iter().cloned());
                return (full != names).then_some(full);
            }
        }
        None
    }

    /// Records a path in expression position (`text` as written), or the call
    /// it makes to a method of the impl block. A path with a leading `::` is
    /// never renamed.
    fn path(
        &mut self,
        names: Vec<String>,
        text: String,
        leading_colon: bool,
        called: bool,
        tokens: &dyn ToTokens,
    ) {
        if let Some(method) = self.own_method(&names) {
            let call = if called { "()" } else { "" };
            let link = format!("{text}{call}");
            self.body.calls.push(Call {
                method,
                link,
                tokens: tokens.to_token_stream(),
            });
            return;
        }
        match self.resolve(&names).filter(|_| !leading_colon) {
            Some(full) => self.found(Seen::Path(full), Some(text), called, tokens),
            None => self.found(Seen::Path(names), None, called, tokens),
        }
    }

    /// The method of the impl block a path names: `Self::m`, `<Self>::m` (read
    /// as `Self::m`) or `Account::m` inside `impl Account`.
    fn own_method(&self, names: &[String]) -> Option<String> {
        let [ty, method] = names else { return None };
        let own_type = ty == "Self" || self.sight.self_ident.is_some_and(|ident| ident == ty);
        (own_type && self.sight.methods.contains(method)).then(|| method.clone())
    }

    /// Records `receiver.method(…)`, or a call of the impl block's method on `self`.
    fn method_call(&mut self, receiver: Vec<String>, method: String, tokens: &dyn ToTokens) {
        if receiver == ["self"] {
            if self.sight.methods.contains(&method) {
                self.body.calls.push(Call {
                    link: format!("self.{method}()"),
                    method,
                    tokens: tokens.to_token_stream(),
                });
            }
            return;
        }
        let (seen, written) = match self.resolve(&receiver) {
            Some(full) => {
                let written = format!("{}.{method}()", receiver.join("::"));
                (
                    Seen::Method {
                        receiver: full,
                        method,
                    },
                    Some(written),
                )
            }
            None => (Seen::Method { receiver, method }, None),
        };
        self.found(seen, written, false, tokens);
    }

    /// Records a macro call by its path, renamed by a `use` if one applies.
    fn mac(&mut self, names: Vec<String>, tokens: &dyn ToTokens) {
        match self.resolve(&names) {
            Some(full) => {
                let written = format!("{}!", names.join("::"));
                self.found(Seen::Macro(full), Some(written), false, tokens);
            }
            None => self.found(Seen::Macro(names), None, false, tokens),
        }
    }

    /// Scans tokens that do not parse as expressions for forbidden path
    /// sequences, method calls on paths, macro names and `unsafe` blocks.
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
                        self.found(Seen::Unsafe, None, false, ident);
                    }
                    i += 1;
                }
                // A method or field name (`ctx.now`) is not a path.
                TokenTree::Ident(_) if after_dot => i += 1,
                TokenTree::Ident(_) | TokenTree::Punct(_) if path_start(&trees, i) => {
                    let leading_colon = is_path_sep(&trees, i);
                    let (names, end) = path_at(&trees, i);
                    let span: TokenStream = trees[i..end].iter().cloned().collect();
                    if trees.get(end).is_some_and(|t| is_punct(t, '!')) {
                        let bang: TokenStream = trees[i..=end].iter().cloned().collect();
                        self.mac(names, &bang);
                    } else {
                        let method = match (trees.get(end), trees.get(end + 1)) {
                            (Some(dot), Some(TokenTree::Ident(method))) if is_punct(dot, '.') => Some(method),
                            _ => None,
                        };
                        match method {
                            Some(method) => {
                                let call: TokenStream = trees[i..end + 2].iter().cloned().collect();
                                let method = method.to_string();
                                if names != ["self"] {
                                    self.path(names.clone(), names.join("::"), leading_colon, false, &span);
                                }
                                self.method_call(names, method, &call);
                            }
                            None if names != ["self"] => {
                                let called = matches!(trees.get(end), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis);
                                let text = names.join("::");
                                self.path(names, text, leading_colon, called, &span);
                            }
                            None => {}
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

    /// Brings the block's `use` items and declared items into scope for all of
    /// it, and each `let` binding for the statements after it.
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
            expr,
        );
        visit::visit_expr_path(self, expr);
    }

    /// A path that is called: recorded with its `()`, for the call chain.
    fn visit_expr_call(&mut self, call: &'ast ExprCall) {
        let Expr::Path(func) = &*call.func else {
            return visit::visit_expr_call(self, call);
        };
        let names = expr_path_names(func);
        // A call of the impl block's own method spans the whole call; any
        // other path, as before, only the path.
        if self.own_method(&names).is_some() {
            self.path(names, written(func), false, true, call);
        } else {
            self.path(names, written(func), leading_colon(func), true, func);
        }
        visit::visit_expr_path(self, func);
        for arg in &call.args {
            self.visit_expr(arg);
        }
    }

    fn visit_expr_method_call(&mut self, call: &'ast ExprMethodCall) {
        if let Expr::Path(receiver) = &*call.receiver {
            let names = expr_path_names(receiver);
            let method = call.method.to_string();
            if names == ["self"] {
                self.method_call(names, method, call);
            } else {
                let (dot, name) = (&call.dot_token, &call.method);
                self.method_call(names, method, &quote!(#receiver #dot #name));
            }
        }
        visit::visit_expr_method_call(self, call);
    }

    fn visit_expr_unsafe(&mut self, expr: &'ast ExprUnsafe) {
        self.found(Seen::Unsafe, None, false, &expr.unsafe_token);
        visit::visit_expr_unsafe(self, expr);
    }

    fn visit_macro(&mut self, mac: &'ast Macro) {
        let (path, bang) = (&mac.path, &mac.bang_token);
        self.mac(path_names(path), &quote!(#path #bang));
        match mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated) {
            Ok(args) => args.iter().for_each(|arg| self.visit_expr(arg)),
            Err(_) => self.scan_tokens(mac.tokens.clone()),
        }
    }
}

/// Enters the names an item declared in a block brings into scope: a `use`
/// maps each name to its full path, any other named item hides outer `use`s.
fn declare(item: &Item, items: &mut HashMap<String, Option<Vec<String>>>) {
    let ident = match item {
        Item::Use(item) => return use_tree(&item.tree, Vec::new(), items),
        Item::ExternCrate(item) => {
            let name = item.rename.as_ref().map_or(&item.ident, |(_, rename)| rename);
            items.insert(name.to_string(), Some(vec![item.ident.to_string()]));
            return;
        }
        Item::Const(item) => &item.ident,
        Item::Enum(item) => &item.ident,
        Item::Fn(item) => &item.sig.ident,
        Item::Macro(item) => match &item.ident {
            Some(ident) => ident,
            None => return,
        },
        Item::Mod(item) => &item.ident,
        Item::Static(item) => &item.ident,
        Item::Struct(item) => &item.ident,
        Item::Trait(item) => &item.ident,
        Item::TraitAlias(item) => &item.ident,
        Item::Type(item) => &item.ident,
        Item::Union(item) => &item.ident,
        _ => return,
    };
    items.insert(ident.to_string(), None);
}

/// The names a `use` tree brings into scope, each with its full path. Globs
/// are skipped: what they bring in is not written in the body.
fn use_tree(tree: &UseTree, mut prefix: Vec<String>, items: &mut HashMap<String, Option<Vec<String>>>) {
    match tree {
        UseTree::Path(path) => {
            prefix.push(path.ident.to_string());
            use_tree(&path.tree, prefix, items);
        }
        UseTree::Name(name) if name.ident == "self" => {
            if let Some(last) = prefix.last().cloned() {
                items.insert(last, Some(prefix));
            }
        }
        UseTree::Name(name) => {
            prefix.push(name.ident.to_string());
            items.insert(name.ident.to_string(), Some(prefix));
        }
        UseTree::Rename(rename) => {
            if rename.ident != "self" {
                prefix.push(rename.ident.to_string());
            }
            if rename.rename != "_" {
                items.insert(rename.rename.to_string(), Some(prefix));
            }
        }
        UseTree::Group(group) => {
            for tree in &group.items {
                use_tree(tree, prefix.clone(), items);
            }
        }
        UseTree::Glob(_) => {}
    }
}

/// The names a `let` pattern binds.
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

fn path_names(path: &syn::Path) -> Vec<String> {
    path.segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect()
}

/// `::std::…` (and `<T>::…`, whose `T` is resolved where it is written):
/// a path that no `use` in the body renames.
fn leading_colon(expr: &ExprPath) -> bool {
    expr.qself.is_none() && expr.path.leading_colon.is_some()
}

/// An expression path as written, without generics: `<Self>::roll`, `::std::fs::read`.
fn written(expr: &ExprPath) -> String {
    let path = path_names(&expr.path).join("::");
    match &expr.qself {
        Some(qself) => {
            let ty = &qself.ty;
            let ty = quote!(#ty).to_string().replace(' ', "");
            format!("<{ty}>::{path}")
        }
        None if expr.path.leading_colon.is_some() => format!("::{path}"),
        None => path,
    }
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
