//! Rule: never modify an event, where `#[derive(Event)]` sees it.
//!
//! Flags `#[derive(Event)]` types with interior mutability anywhere in a
//! field's type as written, generics included (`Vec<Cell<u8>>`,
//! `Arc<Mutex<_>>`); the table and the reason are `factum_rules::immutable_events`.

use syn::visit::{self, Visit};

use factum_rules::immutable_events::judge;

use crate::ctxt::Ctxt;

/// Reports every interior-mutable type in every field of the event type.
pub(super) fn check(data: &syn::Data, cx: &Ctxt) {
    let fields: Vec<(String, &syn::Field)> = match data {
        syn::Data::Struct(data) => named(&data.fields, None),
        syn::Data::Enum(data) => data
            .variants
            .iter()
            .flat_map(|variant| named(&variant.fields, Some(&variant.ident)))
            .collect(),
        syn::Data::Union(data) => data
            .fields
            .named
            .iter()
            .map(|f| (field_name(f, 0, None), f))
            .collect(),
    };
    for (name, field) in fields {
        let mut finder = Finder { found: Vec::new() };
        finder.visit_type(&field.ty);
        for segment in finder.found {
            cx.error_spanned_by(
                &segment.ident,
                format!(
                    "{name} holds `{}`, which can change after the event is recorded; events are \
                     immutable facts (rule: never modify an event). Store the plain value instead.",
                    segment.ident
                ),
            );
        }
    }
}

fn named<'a>(fields: &'a syn::Fields, variant: Option<&syn::Ident>) -> Vec<(String, &'a syn::Field)> {
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| (field_name(f, i, variant), f))
        .collect()
}

fn field_name(field: &syn::Field, index: usize, variant: Option<&syn::Ident>) -> String {
    let field = match &field.ident {
        Some(ident) => format!("field `{ident}`"),
        None => format!("field `{index}`"),
    };
    match variant {
        Some(variant) => format!("{field} of variant `{variant}`"),
        None => field,
    }
}

/// Collects the interior-mutable path segments of a type, generics included.
struct Finder<'ast> {
    found: Vec<&'ast syn::PathSegment>,
}

impl<'ast> Visit<'ast> for Finder<'ast> {
    fn visit_path_segment(&mut self, segment: &'ast syn::PathSegment) {
        if judge(&segment.ident.to_string()) {
            self.found.push(segment);
        }
        visit::visit_path_segment(self, segment);
    }
}
