//! The checksum each stored record carries: CRC32C over everything the
//! record says (stream, version, type, schema version, codec, payload, ids,
//! time), written with the record and checked on every read, so a torn page,
//! a zero-filled block or an edited column is reported as
//! [`StoreError::Corrupt`](super::StoreError::Corrupt) instead of decoding
//! into a wrong event.
//!
//! CRC32C, not a cryptographic hash: it guards against damage, not against
//! someone who can write the database (they can recompute it). It detects
//! every burst error up to 32 bits and all but 2^-32 of the rest, and runs on
//! the CPU's CRC instruction (SSE 4.2, ARMv8) at several GB/s.

use serde_json::Value;

use super::EventMetadata;
use crate::codec::Codec;

/// The fields of one record that its checksum covers. The global position
/// is not among them: PostgreSQL assigns it inside the append statement,
/// after the checksum was computed (a record moved to another position is
/// caught by the feed's gap-free positions, not by this).
pub(crate) struct Covered<'a> {
    pub(crate) stream_type: &'a str,
    pub(crate) stream_id: &'a str,
    pub(crate) version: u64,
    pub(crate) event_type: &'a str,
    pub(crate) schema_version: u32,
    pub(crate) codec: Codec,
    /// The payload as the backend hands it back byte for byte (see
    /// [`canonical_json`] for a backend that does not).
    pub(crate) payload: &'a [u8],
    pub(crate) metadata: &'a EventMetadata,
}

/// Fixed-size fields and lengths, hashed in one call: version, schema
/// version, codec, four lengths, time, four ids and the causation flag.
const HEADER: usize = 8 + 4 + 1 + 4 * 8 + 8 + 4 * 16 + 1;
/// Room for the header and the three names within the id limits (255 +
/// 1,024 + 255 bytes), on the stack.
const JOINED: usize = 2048;

impl Covered<'_> {
    /// The record's CRC32C. Every variable-length field is length-prefixed,
    /// so no two different records hash the same bytes.
    pub(crate) fn checksum(&self) -> u32 {
        let header = self.header();
        // The CRC of a concatenation is the CRC appended part by part, so the
        // header and the names, when they fit one stack buffer (they always
        // do within the id limits), go in one call and the payload in a
        // second: each call of the crate costs more in setup than the bytes.
        let names = [
            self.stream_type.as_bytes(),
            self.stream_id.as_bytes(),
            self.event_type.as_bytes(),
        ];
        let names_len: usize = names.iter().map(|n| n.len()).sum();
        let mut crc = if HEADER + names_len <= JOINED {
            let mut joined = [0u8; JOINED];
            joined[..HEADER].copy_from_slice(&header);
            let mut at = HEADER;
            for name in names {
                joined[at..at + name.len()].copy_from_slice(name);
                at += name.len();
            }
            crc32c::crc32c(&joined[..at])
        } else {
            names.iter().fold(crc32c::crc32c(&header), |crc, name| {
                crc32c::crc32c_append(crc, name)
            })
        };
        crc = crc32c::crc32c_append(crc, self.payload);
        crc
    }

    /// The fixed-size fields and the lengths, in the order they are hashed.
    fn header(&self) -> [u8; HEADER] {
        let m = self.metadata;
        let mut header = [0u8; HEADER];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            header[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(&self.version.to_le_bytes());
        put(&self.schema_version.to_le_bytes());
        put(&[self.codec.id()]);
        for len in [
            self.stream_type.len(),
            self.stream_id.len(),
            self.event_type.len(),
            self.payload.len(),
        ] {
            put(&(len as u64).to_le_bytes());
        }
        put(&m.recorded_at.as_micros().to_le_bytes());
        put(m.event_id.as_bytes());
        put(m.command_id.as_bytes());
        put(m.correlation_id.as_bytes());
        match m.causation_id {
            Some(id) => {
                put(&[1]);
                put(id.as_bytes());
            }
            None => {
                put(&[0]);
                put(&[0; 16]);
            }
        }
        header
    }
}

/// The checksum a record read back must match, as the reason of a
/// [`StoreError::Corrupt`](super::StoreError::Corrupt) when it does not; a
/// record stored without one (written before factum kept checksums, or by
/// such a node during a rolling upgrade) is read unchecked.
pub(crate) fn verify(stored: Option<u32>, covered: &Covered<'_>) -> Result<(), String> {
    match stored {
        None => Ok(()),
        Some(stored) => {
            let computed = covered.checksum();
            if stored == computed {
                Ok(())
            } else {
                Err(format!(
                    "checksum mismatch: stored {stored:08x}, the record's fields give {computed:08x} \
                     (a torn write, damaged storage or an edited column)"
                ))
            }
        }
    }
}

/// A stored checksum column (an SQL integer) as the CRC it holds; a value
/// outside `u32` was never written by factum.
pub(crate) fn from_column(stored: Option<i64>) -> Result<Option<u32>, String> {
    stored
        .map(|n| u32::try_from(n).map_err(|_| format!("column checksum is out of range ({n})")))
        .transpose()
}

/// A JSON payload in a form that survives a store which keeps JSON as a
/// value rather than as bytes (PostgreSQL `jsonb` reorders keys, drops
/// whitespace and duplicate keys, and prints numbers its own way): its
/// checksum is taken over this form on write and on read. Not JSON, a
/// tagged, length-prefixed walk of the value with object keys sorted.
/// Integers (and integral floats within the 64-bit range) are hashed as
/// integers; other floats at 12 significant digits, so two parses of one
/// number in different notations (`1e-7`, `0.0000001`) agree even where a
/// best-effort float parser rounds them to neighbouring doubles.
pub(crate) fn canonical_json(payload: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    let value: Value = serde_json::from_slice(payload)?;
    let mut out = Vec::with_capacity(payload.len());
    walk(&value, &mut out);
    Ok(out)
}

fn walk(value: &Value, out: &mut Vec<u8>) {
    fn text(s: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    match value {
        Value::Null => out.push(b'n'),
        Value::Bool(b) => out.extend_from_slice(if *b { b"t" } else { b"f" }),
        Value::Number(n) => number(n, out),
        Value::String(s) => {
            out.push(b's');
            text(s, out);
        }
        Value::Array(items) => {
            out.push(b'[');
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                walk(item, out);
            }
        }
        Value::Object(map) => {
            out.push(b'{');
            out.extend_from_slice(&(map.len() as u64).to_le_bytes());
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            for (key, item) in entries {
                text(key, out);
                walk(item, out);
            }
        }
    }
}

fn number(n: &serde_json::Number, out: &mut Vec<u8>) {
    // 2^64 and -2^63 as doubles: the integral floats an integer type holds.
    const U64_END: f64 = 18_446_744_073_709_551_616.0;
    const I64_MIN: f64 = -9_223_372_036_854_775_808.0;
    let integer = |out: &mut Vec<u8>, negative: bool, magnitude: u64| {
        out.push(if negative { b'-' } else { b'+' });
        out.extend_from_slice(&magnitude.to_le_bytes());
    };
    if let Some(u) = n.as_u64() {
        integer(out, false, u);
    } else if let Some(i) = n.as_i64() {
        integer(out, i < 0, i.unsigned_abs());
    } else if let Some(f) = n.as_f64() {
        if f.fract() == 0.0 && (0.0..U64_END).contains(&f) {
            // Also -0.0, which PostgreSQL's numeric prints as 0.
            integer(out, false, f as u64);
        } else if f.fract() == 0.0 && (I64_MIN..0.0).contains(&f) {
            integer(out, true, (f as i64).unsigned_abs());
        } else {
            out.push(b'e');
            let shown = format!("{f:.11e}");
            out.extend_from_slice(&(shown.len() as u64).to_le_bytes());
            out.extend_from_slice(shown.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The joined fast path hashes exactly the concatenation the stored
    /// checksums were computed over (header, names, payload, part by part),
    /// for names that fit the stack buffer and for names that do not.
    #[test]
    fn the_checksum_is_the_crc_of_the_concatenation() {
        let metadata = EventMetadata {
            event_id: uuid::Uuid::from_u128(1),
            recorded_at: crate::time::Timestamp::from_micros(1_700_000_000_000_000),
            command_id: uuid::Uuid::from_u128(2),
            causation_id: Some(uuid::Uuid::from_u128(3)),
            correlation_id: uuid::Uuid::from_u128(4),
        };
        let long_id = "x".repeat(JOINED);
        for stream_id in ["acc-1", long_id.as_str()] {
            let covered = Covered {
                stream_type: "account",
                stream_id,
                version: 7,
                event_type: "Deposited",
                schema_version: 1,
                codec: Codec::Json,
                payload: br#"{"amount":5}"#,
                metadata: &metadata,
            };
            let whole = [
                &covered.header()[..],
                covered.stream_type.as_bytes(),
                covered.stream_id.as_bytes(),
                covered.event_type.as_bytes(),
                covered.payload,
            ]
            .concat();
            assert_eq!(
                covered.checksum(),
                crc32c::crc32c(&whole),
                "stream id of {} bytes",
                stream_id.len()
            );
        }
    }

    #[test]
    fn canonical_json_ignores_what_jsonb_changes() {
        let written = br#"{"b": 1, "a": [1.0, 1e-7, -0.0, 1e19], "c": "\u00e9\/"}"#;
        let as_jsonb = r#"{"a": [1.0, 0.0000001, 0, 10000000000000000000], "b": 1, "c": "é/"}"#;
        assert_eq!(
            canonical_json(written).unwrap(),
            canonical_json(as_jsonb.as_bytes()).unwrap()
        );
    }

    #[test]
    fn canonical_json_sees_a_changed_value() {
        let a = canonical_json(br#"{"amount": 10, "to": "x"}"#).unwrap();
        for other in [
            &br#"{"amount": 11, "to": "x"}"#[..],
            br#"{"amount": 10, "to": "y"}"#,
            br#"{"amount": "10", "to": "x"}"#,
            br#"{"amount": 10, "to": ["x"]}"#,
            br#"{"amount": 10.5, "to": "x"}"#,
        ] {
            assert_ne!(
                a,
                canonical_json(other).unwrap(),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }
}
