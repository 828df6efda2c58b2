//! How event payloads and snapshots become bytes.
//!
//! Every stored record names the codec that wrote it, so a store can switch
//! codecs without rewriting history: old records keep decoding with their own.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A payload encoding.
///
/// [`Codec::Json`] is the default: readable in the database, tolerant of added
/// optional fields. [`Codec::Postcard`] is a compact binary format (the
/// `postcard` crate: serde-native, no schema files, actively maintained) that
/// encodes and decodes several times faster; it is not self-describing, so
/// serde attributes that need `deserialize_any` (`untagged`, `flatten`) do not
/// work with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Codec {
    /// JSON via `serde_json`.
    #[default]
    Json,
    /// Postcard, a compact binary serde format.
    Postcard,
}

/// A value that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("{codec:?} codec: {message}")]
pub struct CodecError {
    /// The codec that failed.
    pub codec: Codec,
    /// What the codec reported.
    pub message: String,
}

impl Codec {
    /// The byte that identifies this codec in storage.
    pub const fn id(self) -> u8 {
        match self {
            Codec::Json => 1,
            Codec::Postcard => 2,
        }
    }

    /// The codec a storage byte names, if any.
    pub const fn from_id(id: u8) -> Option<Codec> {
        match id {
            1 => Some(Codec::Json),
            2 => Some(Codec::Postcard),
            _ => None,
        }
    }

    /// Encodes `value`.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, CodecError> {
        let res = match self {
            Codec::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
            Codec::Postcard => {
                // `to_stdvec` grows a Vec from empty a byte at a time (two
                // reallocations for a 10-byte event). Most events fit in a
                // stack buffer, copied once into a Vec of the exact size.
                let mut buf = [0u8; 256];
                match postcard::to_slice(value, &mut buf) {
                    Ok(bytes) => Ok(bytes.to_vec()),
                    Err(postcard::Error::SerializeBufferFull) => {
                        postcard::to_stdvec(value).map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        res.map_err(|message| CodecError { codec: self, message })
    }

    /// Decodes a `T` from `bytes`.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        let res = match self {
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            Codec::Postcard => postcard::from_bytes(bytes).map_err(|e| e.to_string()),
        };
        res.map_err(|message| CodecError { codec: self, message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postcard_round_trips_values_larger_than_its_stack_buffer() {
        let small = vec![7u8; 10];
        let large = vec![7u8; 10_000];
        for value in [small, large] {
            let bytes = Codec::Postcard.encode(&value).unwrap();
            assert_eq!(bytes, postcard::to_stdvec(&value).unwrap());
            assert_eq!(Codec::Postcard.decode::<Vec<u8>>(&bytes).unwrap(), value);
        }
    }
}
