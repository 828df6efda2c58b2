//! Which methods of an impl block a handler reaches, and the rules on each.
//!
//! A handler's own body is judged where it is written. Each method of the
//! same impl block it calls (`self.m(..)`, `Self::m(..)`, `<Self>::m(..)`,
//! `Account::m(..)` in `impl Account`), and each one those call in turn, runs
//! as part of the handler, so it is judged by the handler's site; a violation
//! there is reported on the handler's own call, with the chain of calls that
//! reaches it (`deposit → self.stamp() → SystemTime::now()`). A method no
//! handler reaches is not judged: nothing says where it runs.
//!
//! Each method is walked once, and each handler follows a method once, by the
//! shortest chain (breadth first), so a cycle ends and a diamond reports once.
//! A handler reached by another handler of the same site is skipped: its
//! violations are already reported in its own body.

use std::collections::{HashMap, HashSet, VecDeque};

use proc_macro2::TokenStream;
use syn::{ImplItem, ImplItemFn, ItemImpl};

use super::walk::{Body, Found, Sight, walk_block};
use super::{At, Site};
use crate::ast::type_ident;
use crate::ctxt::Ctxt;

/// Judges every root's body and every method it reaches; see the module docs.
pub(super) fn check(item: &ItemImpl, roots: &[(&ImplItemFn, Site)], cx: &Ctxt) {
    let methods: HashMap<String, &ImplItemFn> = item
        .items
        .iter()
        .filter_map(|item| match item {
            ImplItem::Fn(method) => Some((method.sig.ident.to_string(), method)),
            _ => None,
        })
        .collect();
    let sight = Sight {
        methods: methods.keys().cloned().collect(),
        self_ident: type_ident(&item.self_ty),
    };
    let mut walked: HashMap<String, Body> = HashMap::new();

    for &(root, site) in roots {
        let name = root.sig.ident.to_string();
        let body = walked
            .entry(name.clone())
            .or_insert_with(|| walk_block(&root.block, &sight));
        for found in &body.found {
            judge(found, site, &[], &found.tokens, cx);
        }

        // (method, the chain that reaches it, the root's call it is reported on)
        let mut queue: VecDeque<(String, Vec<String>, TokenStream)> = body
            .calls
            .iter()
            .map(|call| {
                (
                    call.method.clone(),
                    vec![name.clone(), call.link.clone()],
                    call.tokens.clone(),
                )
            })
            .collect();
        let mut followed = HashSet::from([name]);
        while let Some((method, chain, anchor)) = queue.pop_front() {
            if !followed.insert(method.clone()) {
                continue;
            }
            let root_of_same_site = roots
                .iter()
                .any(|&(other, other_site)| other.sig.ident == method && other_site == site);
            let Some(helper) = methods.get(&method).filter(|_| !root_of_same_site) else {
                continue;
            };
            let body = walked
                .entry(method)
                .or_insert_with(|| walk_block(&helper.block, &sight));
            for found in &body.found {
                judge(found, site, &chain, &anchor, cx);
            }
            for call in &body.calls {
                let mut chain = chain.clone();
                chain.push(call.link.clone());
                queue.push_back((call.method.clone(), chain, anchor.clone()));
            }
        }
    }
}

/// Judges one body that belongs to no impl block: no helper is in sight.
#[cfg(test)]
pub(super) fn check_alone(body: &syn::Block, site: Site, cx: &Ctxt) {
    let sight = Sight {
        methods: HashSet::new(),
        self_ident: None,
    };
    for found in &walk_block(body, &sight).found {
        judge(found, site, &[], &found.tokens, cx);
    }
}

/// Asks every rule about `found`, reached from its handler by `chain`; each
/// one that forbids it reports an error on `tokens`.
fn judge(found: &Found, site: Site, chain: &[String], tokens: &TokenStream, cx: &Ctxt) {
    let at = At {
        site,
        chain,
        written: found.written.as_deref(),
        called: found.called,
    };
    for message in factum_rules::judge(&found.seen, &at) {
        cx.error_spanned_by(tokens, message);
    }
}
