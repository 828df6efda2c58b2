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

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

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
/// tagged, length-prefixed walk of the value with object keys sorted (a
/// repeated key keeps its last value, as `jsonb` does). Integers (and
/// integral floats within the 64-bit range) are hashed as integers; other
/// floats at 12 significant digits, so two parses of one number in different
/// notations (`1e-7`, `0.0000001`) agree even where a best-effort float
/// parser rounds them to neighbouring doubles.
///
/// Written straight from the parser's events, with no `serde_json::Value`
/// in between, whose maps and key strings were most of what this cost: per
/// bank event (callgrind, the store bench) ~4,100 instructions on append and
/// ~4,350 on read through `Value`, ~1,550 and ~2,000 now.
pub(crate) fn canonical_json(payload: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(payload.len() + 32);
    let mut parser = serde_json::Deserializer::from_slice(payload);
    Canon(&mut out).deserialize(&mut parser)?;
    parser.end()?;
    Ok(out)
}

/// Writes the canonical form of the value it is handed to the end of `.0`.
struct Canon<'o>(&'o mut Vec<u8>);

/// Writes an object key (as a length-prefixed string, unlike a value, which
/// is tagged).
struct Key<'o>(&'o mut Vec<u8>);

fn text(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Reserves a count's eight bytes at the end of `out`, for [`patch_count`].
fn count_slot(out: &mut Vec<u8>, tag: u8) -> usize {
    out.push(tag);
    out.extend_from_slice(&[0; 8]);
    out.len() - 8
}

fn patch_count(out: &mut [u8], slot: usize, count: usize) {
    out[slot..slot + 8].copy_from_slice(&(count as u64).to_le_bytes());
}

impl<'de> DeserializeSeed<'de> for Canon<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Key<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        text(s, self.0);
        Ok(())
    }
}

impl<'de> Visitor<'de> for Canon<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.push(b'n');
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<(), E> {
        self.0.push(if b { b't' } else { b'f' });
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<(), E> {
        integer(self.0, false, u);
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<(), E> {
        integer(self.0, i < 0, i.unsigned_abs());
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<(), E> {
        float(self.0, f);
        Ok(())
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        self.0.push(b's');
        text(s, self.0);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let out = self.0;
        let slot = count_slot(out, b'[');
        let mut count = 0;
        while items.next_element_seed(Canon(out))?.is_some() {
            count += 1;
        }
        patch_count(out, slot, count);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<(), A::Error> {
        let out = self.0;
        let slot = count_slot(out, b'{');
        let base = out.len();
        // Where each entry starts; its key's bytes follow the 8-byte length.
        let mut starts = Starts::default();
        let mut in_order = true;
        loop {
            let start = out.len();
            if entries.next_key_seed(Key(out))?.is_none() {
                break;
            }
            if let Some(previous) = starts.last() {
                in_order &= key_at(out, previous) < key_at(out, start);
            }
            starts.push(start);
            entries.next_value_seed(Canon(out))?;
        }
        let count = if in_order {
            starts.as_slice().len()
        } else {
            sort_entries(out, base, starts.as_slice())
        };
        patch_count(out, slot, count);
        Ok(())
    }
}

/// Objects up to this many entries keep their bookkeeping on the stack and
/// are sorted in place: a bank event has two or three, and `jsonb` hands them
/// back shortest key first, so the read side sorts nearly every object.
const SMALL: usize = 16;

/// Entry offsets: on the stack for a small object, in a `Vec` beyond.
#[derive(Default)]
struct Starts {
    inline: [usize; SMALL],
    len: usize,
    spilled: Vec<usize>,
}

impl Starts {
    fn push(&mut self, start: usize) {
        if self.len < SMALL {
            self.inline[self.len] = start;
        } else {
            if self.spilled.is_empty() {
                self.spilled.extend_from_slice(&self.inline);
            }
            self.spilled.push(start);
        }
        self.len += 1;
    }

    fn last(&self) -> Option<usize> {
        self.as_slice().last().copied()
    }

    fn as_slice(&self) -> &[usize] {
        if self.len <= SMALL {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }
}

/// The key of the entry written at `start`.
fn key_at(out: &[u8], start: usize) -> &[u8] {
    let mut len = [0; 8];
    len.copy_from_slice(&out[start..start + 8]);
    let len = u64::from_le_bytes(len) as usize;
    &out[start + 8..start + 8 + len]
}

/// Rewrites the entries from `base` to the end of `out` in key order, the
/// last of a repeated key kept in the place of the first; returns how many
/// are left.
fn sort_entries(out: &mut Vec<u8>, base: usize, starts: &[usize]) -> usize {
    if starts.len() <= SMALL {
        sort_small(out, base, starts)
    } else {
        sort_large(out, base, starts)
    }
}

/// An insertion sort that moves each entry's bytes into place by rotation:
/// no allocation, and quadratic only in the entry count it is limited to.
fn sort_small(out: &mut Vec<u8>, base: usize, starts: &[usize]) -> usize {
    let written_end = out.len();
    // The lengths of the entries sorted so far, in order: they fill
    // out[base..at], and the entries not yet sorted follow at `at`.
    let mut sorted = [0usize; SMALL];
    let mut kept = 0;
    let mut at = base;
    for (i, &start) in starts.iter().enumerate() {
        let len = starts.get(i + 1).copied().unwrap_or(written_end) - start;
        let mut offset = base;
        let mut k = 0;
        while k < kept && key_at(out, offset) < key_at(out, at) {
            offset += sorted[k];
            k += 1;
        }
        if k < kept && key_at(out, offset) == key_at(out, at) {
            // A repeated key: the later value takes the earlier one's place.
            let earlier = sorted[k];
            out.drain(offset..offset + earlier);
            at -= earlier;
            out[offset..at + len].rotate_right(len);
            sorted[k] = len;
        } else {
            out[offset..at + len].rotate_right(len);
            sorted.copy_within(k..kept, k + 1);
            sorted[k] = len;
            kept += 1;
        }
        at += len;
    }
    kept
}

/// Sorts through a copy, for an object too large to sort by rotation.
fn sort_large(out: &mut Vec<u8>, base: usize, starts: &[usize]) -> usize {
    let written = out.split_off(base);
    let span = |i: usize| {
        let end = starts.get(i + 1).copied().unwrap_or(base + written.len());
        (starts[i] - base)..(end - base)
    };
    let mut order: Vec<usize> = (0..starts.len()).collect();
    // Stable, so among equal keys the last written sorts last.
    order.sort_by(|&a, &b| key_at(&written, span(a).start).cmp(key_at(&written, span(b).start)));
    let mut kept = 0;
    for (n, &i) in order.iter().enumerate() {
        let repeated = order
            .get(n + 1)
            .is_some_and(|&next| key_at(&written, span(next).start) == key_at(&written, span(i).start));
        if !repeated {
            out.extend_from_slice(&written[span(i)]);
            kept += 1;
        }
    }
    kept
}

fn integer(out: &mut Vec<u8>, negative: bool, magnitude: u64) {
    out.push(if negative { b'-' } else { b'+' });
    out.extend_from_slice(&magnitude.to_le_bytes());
}

fn float(out: &mut Vec<u8>, f: f64) {
    // 2^64 and -2^63 as doubles: the integral floats an integer type holds.
    const U64_END: f64 = 18_446_744_073_709_551_616.0;
    const I64_MIN: f64 = -9_223_372_036_854_775_808.0;
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

    /// The form as it was first computed, through a `serde_json::Value`:
    /// every checksum stored since was taken over it, so the streaming
    /// walk must give the same bytes.
    fn through_value(payload: &[u8]) -> Vec<u8> {
        use serde_json::Value;
        fn walk(value: &Value, out: &mut Vec<u8>) {
            match value {
                Value::Null => out.push(b'n'),
                Value::Bool(b) => out.push(if *b { b't' } else { b'f' }),
                Value::Number(n) => {
                    if let Some(u) = n.as_u64() {
                        integer(out, false, u);
                    } else if let Some(i) = n.as_i64() {
                        integer(out, i < 0, i.unsigned_abs());
                    } else if let Some(f) = n.as_f64() {
                        float(out, f);
                    }
                }
                Value::String(s) => {
                    out.push(b's');
                    text(s, out);
                }
                Value::Array(items) => {
                    out.push(b'[');
                    out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                    items.iter().for_each(|item| walk(item, out));
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
        let value: Value = serde_json::from_slice(payload).unwrap();
        let mut out = Vec::new();
        walk(&value, &mut out);
        out
    }

    /// A pseudo-random JSON text: nested objects with repeated, escaped and
    /// out-of-order keys, and numbers of every kind the parser tells apart.
    fn random_json(seed: &mut u64, depth: u32, out: &mut String) {
        fn next(seed: &mut u64, n: u64) -> u64 {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed % n
        }
        const KEYS: [&str; 8] = ["b", "a", "ab", "\\u00e9", "é", "a\\nb", "", "zz"];
        const SCALARS: [&str; 14] = [
            "null",
            "true",
            "false",
            "0",
            "-0.0",
            "1.0",
            "1e-7",
            "-12",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775809",
            "3.25",
            "\"x\\\"y\"",
            "\"\\u00e9\"",
        ];
        match if depth == 0 { 0 } else { next(seed, 3) } {
            0 => out.push_str(SCALARS[next(seed, SCALARS.len() as u64) as usize]),
            1 => {
                out.push('[');
                for i in 0..next(seed, 4) {
                    if i > 0 {
                        out.push(',');
                    }
                    random_json(seed, depth - 1, out);
                }
                out.push(']');
            }
            _ => {
                out.push('{');
                for i in 0..next(seed, 6) {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let key = KEYS[next(seed, KEYS.len() as u64) as usize];
                    out.push_str(&format!("\"{key}\": "));
                    random_json(seed, depth - 1, out);
                }
                out.push('}');
            }
        }
    }

    #[test]
    fn canonical_json_is_the_form_the_stored_checksums_were_taken_over() {
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..5_000 {
            let mut doc = String::new();
            random_json(&mut seed, 4, &mut doc);
            assert_eq!(
                canonical_json(doc.as_bytes()).unwrap(),
                through_value(doc.as_bytes()),
                "{doc}"
            );
        }
        // Objects past the in-place sort's limit, with repeated keys.
        for entries in [SMALL, SMALL + 1, 40] {
            let mut doc = String::from("{");
            for i in 0..entries {
                if i > 0 {
                    doc.push(',');
                }
                doc.push_str(&format!("\"k{}\":", (i * 7919 + entries) % 23));
                random_json(&mut seed, 2, &mut doc);
            }
            doc.push('}');
            assert_eq!(
                canonical_json(doc.as_bytes()).unwrap(),
                through_value(doc.as_bytes()),
                "{doc}"
            );
        }
    }

    #[test]
    fn canonical_json_refuses_what_is_not_one_json_value() {
        for bad in [&b""[..], b"{", b"{\"a\": 1} x", b"[1,]", b"{\"a\" 1}", b"nul"] {
            assert!(canonical_json(bad).is_err(), "{}", String::from_utf8_lossy(bad));
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
