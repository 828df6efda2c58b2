//! An event's wire shape as written: its fields in order, each with its type
//! and the serde attributes that change how it is encoded, and the
//! container's own such attributes. The event lock (`factum::testkit::check_event_lock`)
//! compares it across releases, so it must read the same however the source
//! is formatted: every piece is printed from tokens, with one spacing.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::ToTokens;
use syn::punctuated::Punctuated;
use syn::{Attribute, Data, DeriveInput, Fields, Meta, Token, Type};

/// serde container attributes that change the encoding of every field.
const CONTAINER_KEYS: &[&str] = &[
    "rename",
    "rename_all",
    "tag",
    "content",
    "untagged",
    "transparent",
    "default",
    "deny_unknown_fields",
    "from",
    "try_from",
    "into",
    "remote",
];

/// serde field attributes that change the field's name, presence or encoding.
const FIELD_KEYS: &[&str] = &[
    "rename",
    "alias",
    "flatten",
    "skip",
    "skip_serializing",
    "skip_deserializing",
    "skip_serializing_if",
    "default",
    "with",
    "serialize_with",
    "deserialize_with",
];

/// One field of the shape.
pub(crate) struct FieldShape<'a> {
    /// The field's Rust name, or its index in a tuple struct.
    pub name: String,
    /// The type as written, for the lock.
    pub text: String,
    /// The type itself, so the generated code can name what it resolves to.
    pub ty: &'a Type,
    /// Its encoding-changing serde attributes, as written.
    pub serde: Vec<String>,
}

/// The container's encoding-changing serde attributes, as written.
pub(crate) fn container_serde(input: &DeriveInput) -> Vec<String> {
    serde_keys(&input.attrs, CONTAINER_KEYS)
}

/// The fields of a struct, in declaration order (an enum or union has none:
/// the derive rejects those).
pub(crate) fn fields(input: &DeriveInput) -> Vec<FieldShape<'_>> {
    let Data::Struct(data) = &input.data else {
        return Vec::new();
    };
    let fields = match &data.fields {
        Fields::Named(named) => &named.named,
        Fields::Unnamed(unnamed) => &unnamed.unnamed,
        Fields::Unit => return Vec::new(),
    };
    fields
        .iter()
        .enumerate()
        .map(|(i, field)| FieldShape {
            name: field
                .ident
                .as_ref()
                .map_or_else(|| i.to_string(), |ident| ident.to_string()),
            text: compact(field.ty.to_token_stream()),
            ty: &field.ty,
            serde: serde_keys(&field.attrs, FIELD_KEYS),
        })
        .collect()
}

/// Every item of every `#[serde(…)]` whose key is in `keys`, printed compactly.
/// Items that do not parse as metas are left to serde to report.
fn serde_keys(attrs: &[Attribute], keys: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let Ok(metas) = attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated) else {
            continue;
        };
        for meta in metas {
            if keys.iter().any(|key| meta.path().is_ident(key)) {
                found.push(compact(meta.to_token_stream()));
            }
        }
    }
    found
}

/// Tokens as text with one spacing, whatever the source's: a space between
/// words, after `,` and `;`, and around `=`, `->` and `+`; none elsewhere
/// (`Vec<Option<String>>`, `&'static str`, `[u8; 4]`, `rename = "at"`).
pub(crate) fn compact(tokens: TokenStream) -> String {
    let mut out = String::new();
    write_compact(tokens, &mut out);
    out
}

fn write_compact(tokens: TokenStream, out: &mut String) {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let punct = |i: usize| match trees.get(i) {
        Some(TokenTree::Punct(p)) => Some((p.as_char(), p.spacing())),
        _ => None,
    };
    let word = |i: usize| matches!(trees.get(i), Some(TokenTree::Ident(_) | TokenTree::Literal(_)));
    // `=` on its own (not the end of `==`, `<=`, `=>`), `+`, and the `-` of `->`.
    let spaced = |i: usize| match punct(i) {
        Some(('=', Spacing::Alone)) => i == 0 || !matches!(punct(i - 1), Some((_, Spacing::Joint))),
        Some(('+', _)) => true,
        Some(('-', Spacing::Joint)) => matches!(punct(i + 1), Some(('>', _))),
        _ => false,
    };
    for (i, tree) in trees.iter().enumerate() {
        if i > 0 {
            let after_spaced = spaced(i - 1) && punct(i - 1) != Some(('-', Spacing::Joint))
                || (i > 1 && spaced(i - 2) && punct(i - 2) == Some(('-', Spacing::Joint)));
            let space = matches!(punct(i - 1), Some((',' | ';', _)))
                || (word(i) && word(i - 1))
                || spaced(i)
                || after_spaced;
            if space {
                out.push(' ');
            }
        }
        match tree {
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("", ""),
                };
                out.push_str(open);
                write_compact(group.stream(), out);
                out.push_str(close);
            }
            other => out.push_str(&other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{compact, container_serde, fields};
    use quote::quote;

    #[test]
    fn types_print_the_same_however_they_are_spaced() {
        for (written, shown) in [
            (quote!(u64), "u64"),
            (quote!(Vec<Option<String>>), "Vec<Option<String>>"),
            (
                quote!(std :: collections :: BTreeMap<String, u64>),
                "std::collections::BTreeMap<String, u64>",
            ),
            (quote!(&'static str), "&'static str"),
            (quote!([u8; 4]), "[u8; 4]"),
            (quote!((u8, String)), "(u8, String)"),
            (
                quote!(Box<dyn Fn(u8) -> u8 + Send>),
                "Box<dyn Fn(u8) -> u8 + Send>",
            ),
            (quote!(rename = "at"), "rename = \"at\""),
            (quote!(default = "zero"), "default = \"zero\""),
            (
                quote!(skip_serializing_if = "Option::is_none"),
                "skip_serializing_if = \"Option::is_none\"",
            ),
            (
                quote!(rename(serialize = "a", deserialize = "b")),
                "rename(serialize = \"a\", deserialize = \"b\")",
            ),
        ] {
            assert_eq!(compact(written), shown);
        }
    }

    #[test]
    fn the_shape_keeps_fields_in_order_with_the_serde_attributes_that_change_the_encoding() {
        let input: syn::DeriveInput = syn::parse_quote! {
            #[derive(Serialize)]
            #[serde(rename_all = "camelCase", bound = "T: Serialize")]
            #[event(name = "account.deposited")]
            struct Deposited {
                #[serde(rename = "cents", alias = "amount")]
                amount: u64,
                /// The time, recorded by the handler.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                at: Option<Timestamp>,
                #[serde(flatten)]
                extra: Extra,
            }
        };
        assert_eq!(container_serde(&input), ["rename_all = \"camelCase\""]);
        let shown: Vec<(String, String, Vec<String>)> = fields(&input)
            .into_iter()
            .map(|f| (f.name, f.text, f.serde))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "amount".to_owned(),
                    "u64".to_owned(),
                    vec!["rename = \"cents\"".to_owned(), "alias = \"amount\"".to_owned()]
                ),
                (
                    "at".to_owned(),
                    "Option<Timestamp>".to_owned(),
                    vec![
                        "default".to_owned(),
                        "skip_serializing_if = \"Option::is_none\"".to_owned()
                    ]
                ),
                ("extra".to_owned(), "Extra".to_owned(), vec!["flatten".to_owned()]),
            ]
        );
    }

    #[test]
    fn tuple_structs_name_fields_by_index() {
        let input: syn::DeriveInput = syn::parse_quote!(
            struct Counted(u8, #[serde(skip)] String);
        );
        let names: Vec<(String, Vec<String>)> =
            fields(&input).into_iter().map(|f| (f.name, f.serde)).collect();
        assert_eq!(
            names,
            [
                ("0".to_owned(), vec![]),
                ("1".to_owned(), vec!["skip".to_owned()])
            ]
        );
    }
}
