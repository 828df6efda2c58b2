//! What `#[entity]` and `#[derive(Event)]` add for the audit tools
//! (`factum::audit`): type-erased decoders entered in their registries.
//!
//! Whether a command type is `Deserialize` (and the state `Serialize`) is
//! probed, not required: `(&&Probe::<T>::new()).method()` picks the serde
//! impl when `T` has one and the fallback otherwise, so an entity without
//! serde commands compiles as before and only a what-if on such a command
//! reports, at run time, which derive to add.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Ident, Type};

/// `impl Audited` for the entity and its entry in the audit registry.
pub(crate) fn entity(self_ident: &Ident, commands: &Ident, variants: &[(&Ident, &Type)]) -> TokenStream {
    let rust_type = self_ident.to_string();
    let names: Vec<String> = variants.iter().map(|(ident, _)| ident.to_string()).collect();
    let types = variants.iter().map(|(_, ty)| ty);
    quote! {
        #[automatically_derived]
        impl ::factum::__private::Audited for #self_ident {
            const COMMANDS: &'static [&'static str] = &[#(#names),*];

            fn state_json(
                &self,
            ) -> ::core::option::Option<
                ::core::result::Result<::factum::__private::serde_json::Value, ::std::string::String>,
            > {
                use ::factum::__private::{NoSerializeProbe as _, SerializeProbe as _};
                (&&::factum::__private::Probe::<Self>::new()).state_json(self)
            }

            fn command_decoder(
                __name: &str,
            ) -> ::core::option::Option<
                ::core::option::Option<::factum::__private::CommandDecoder<#commands>>,
            > {
                use ::factum::__private::{DeserializeProbe as _, NoDeserializeProbe as _};
                match __name {
                    #(#names => ::core::option::Option::Some(
                        (&&::factum::__private::Probe::<#types>::new()).command_decoder::<#commands>()
                    ),)*
                    _ => ::core::option::Option::None,
                }
            }
        }

        ::factum::__private::inventory::submit! {
            ::factum::__private::EntityAudit::of::<#self_ident>(#rust_type)
        }
    }
}

/// The event's decoder, entered in the audit registry.
pub(crate) fn event(ty: &Ident) -> TokenStream {
    let rust_type = ty.to_string();
    quote! {
        ::factum::__private::inventory::submit! {
            ::factum::__private::EventDecoder::of::<#ty>(#rust_type)
        }
    }
}
