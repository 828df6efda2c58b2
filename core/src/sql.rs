//! What the SQLite and PostgreSQL backends share, written once: integers in
//! and out of SQL, decoding a damaged row into an error that names it, and
//! the acknowledgement of an append that already committed.

use uuid::Uuid;

use crate::store::checksum::{self, Covered};
use crate::store::{AppendRequest, Appended, RecordedEvent, StoreError};

/// A `u64` as a SQL integer. Used for query bounds (a bound past `i64::MAX`
/// matches nothing either way) and for positions and versions the store
/// assigned itself, which stay far below 2^63.
pub(crate) fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A stored SQL integer as a position, version or count. A negative one was
/// never written by factum: the row was edited or damaged, and is reported
/// as [`StoreError::CorruptTable`] naming the table and the row, never
/// clamped into range.
pub(crate) fn unsigned(
    stored: i64,
    backend: &'static str,
    table: &'static str,
    row: impl FnOnce() -> String,
) -> Result<u64, StoreError> {
    u64::try_from(stored).map_err(|_| StoreError::CorruptTable {
        backend,
        table,
        row: row(),
        reason: format!("negative value {stored}"),
    })
}

/// Whether an append that found its stream at `actual` instead of the
/// expected version may be one that already committed (its answer lost): the
/// stream is exactly where this append would have left it.
pub(crate) fn may_have_committed(request: &AppendRequest, actual: u64) -> bool {
    let n = request.events.len() as u64;
    n > 0 && actual == request.expected_version.saturating_add(n)
}

/// The answer to an append whose stream is at `actual`, given the stored
/// `(position, event id)` of the stream's events after the expected version:
/// `Ok` when they are exactly this request's events (event ids are
/// deterministic per command and index, see [`crate::ids::event_id`]), so the
/// append already committed; a conflict otherwise.
pub(crate) fn acknowledge(
    request: &AppendRequest,
    actual: u64,
    stored: &[(u64, Uuid)],
) -> Result<Appended, StoreError> {
    let own = may_have_committed(request, actual)
        && stored.len() == request.events.len()
        && stored
            .iter()
            .zip(&request.events)
            .all(|((_, id), e)| *id == e.metadata.event_id);
    match (own, stored.first(), stored.last()) {
        (true, Some(&(first_position, _)), Some(&(last_position, _))) => Ok(Appended {
            version: actual,
            first_position,
            last_position,
            acknowledged: true,
        }),
        _ => Err(StoreError::conflict(request, actual)),
    }
}

/// One `events` row as a backend decoded it, column by column. The fields
/// that name the record are read apart from the rest, so damage elsewhere
/// is still reported against the stream, version and position.
pub(crate) struct DecodedRow {
    pub(crate) position: Result<u64, String>,
    pub(crate) stream_type: Result<String, String>,
    pub(crate) stream_id: Result<String, String>,
    pub(crate) version: Result<u64, String>,
    pub(crate) event_type: Result<String, String>,
    /// The stored checksum; `None` for a record written before factum kept them.
    pub(crate) checksum: Result<Option<u32>, String>,
    /// Everything else; its naming fields are placeholders, filled in here.
    pub(crate) rest: Result<RecordedEvent, String>,
}

/// How a backend keeps a JSON payload: as the bytes written (SQLite), or as
/// a value it prints its own way (PostgreSQL `jsonb`), whose checksum is
/// then taken over [`checksum::canonical_json`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonKept {
    #[cfg_attr(
        not(feature = "sqlite"),
        allow(dead_code, reason = "only the SQLite store keeps JSON as bytes")
    )]
    Bytes,
    Value,
}

/// The checksum of an event about to be stored at `version` of the
/// request's stream; for a JSON payload kept as a value, taken over its
/// canonical form (which also proves it is JSON).
pub(crate) fn checksum_of(
    request: &AppendRequest,
    version: u64,
    event: &crate::store::NewEvent,
    json: JsonKept,
) -> Result<u32, serde_json::Error> {
    let canonical;
    let payload = if json == JsonKept::Value && event.codec == crate::codec::Codec::Json {
        canonical = checksum::canonical_json(&event.payload)?;
        canonical.as_slice()
    } else {
        event.payload.as_slice()
    };
    Ok(Covered {
        stream_type: &request.stream_type,
        stream_id: &request.stream_id,
        version,
        event_type: &event.event_type,
        schema_version: event.schema_version,
        codec: event.codec,
        payload,
        metadata: &event.metadata,
    }
    .checksum())
}

/// Puts a decoded row together and checks it against its checksum, or names
/// the damaged record as well as the damage allows: the first unreadable
/// column, or the checksum mismatch, is the reason.
pub(crate) fn assemble(row: DecodedRow, json: JsonKept) -> Result<RecordedEvent, StoreError> {
    let DecodedRow {
        position,
        stream_type,
        stream_id,
        version,
        event_type,
        checksum,
        rest,
    } = row;
    // The record's names move into the event read, not cloned: a clone was
    // three allocations and copies on every record read.
    let (position, stream_type, stream_id, version, event_type, reason) = match (
        position,
        stream_type,
        stream_id,
        version,
        event_type,
        checksum,
        rest,
    ) {
        (
            Ok(position),
            Ok(stream_type),
            Ok(stream_id),
            Ok(version),
            Ok(event_type),
            Ok(stored),
            Ok(event),
        ) => match verify(
            stored,
            &event,
            &stream_type,
            &stream_id,
            version,
            &event_type,
            json,
        ) {
            Ok(()) => {
                return Ok(RecordedEvent {
                    position,
                    stream_type,
                    stream_id,
                    version,
                    event_type,
                    ..event
                });
            }
            Err(reason) => (
                Ok(position),
                Ok(stream_type),
                Ok(stream_id),
                Ok(version),
                Ok(event_type),
                reason,
            ),
        },
        (position, stream_type, stream_id, version, event_type, checksum, rest) => {
            let reason = [
                position.as_ref().err(),
                stream_type.as_ref().err(),
                stream_id.as_ref().err(),
                version.as_ref().err(),
                event_type.as_ref().err(),
                checksum.as_ref().err(),
                rest.as_ref().err(),
            ]
            .into_iter()
            .flatten()
            .next()
            .cloned()
            .unwrap_or_default();
            (position, stream_type, stream_id, version, event_type, reason)
        }
    };
    Err(StoreError::Corrupt {
        stream_type: stream_type.unwrap_or_else(|_| "<unreadable>".into()),
        stream_id: stream_id.unwrap_or_else(|_| "<unreadable>".into()),
        version: version.unwrap_or(0),
        position: position.unwrap_or(0),
        event_type: event_type.ok().map(String::into_boxed_str),
        reason: reason.into_boxed_str(),
    })
}

fn verify(
    stored: Option<u32>,
    event: &RecordedEvent,
    stream_type: &str,
    stream_id: &str,
    version: u64,
    event_type: &str,
    json: JsonKept,
) -> Result<(), String> {
    if stored.is_none() {
        // Written before factum kept checksums: read unchecked.
        return Ok(());
    }
    let canonical;
    let payload = if json == JsonKept::Value && event.codec == crate::codec::Codec::Json {
        canonical = checksum::canonical_json(&event.payload)
            .map_err(|e| format!("the JSON payload does not parse: {e}"))?;
        canonical.as_slice()
    } else {
        event.payload.as_slice()
    };
    checksum::verify(
        stored,
        &covered(event, stream_type, stream_id, version, event_type, payload),
    )
}

fn covered<'a>(
    event: &'a RecordedEvent,
    stream_type: &'a str,
    stream_id: &'a str,
    version: u64,
    event_type: &'a str,
    payload: &'a [u8],
) -> Covered<'a> {
    Covered {
        stream_type,
        stream_id,
        version,
        event_type,
        schema_version: event.schema_version,
        codec: event.codec,
        payload,
        metadata: &event.metadata,
    }
}
