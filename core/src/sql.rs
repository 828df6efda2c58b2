//! What the SQLite and PostgreSQL backends share, written once: integers in
//! and out of SQL, decoding a damaged row into an error that names it, and
//! the acknowledgement of an append that already committed.

use uuid::Uuid;

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

/// Puts a decoded row together, or names the damaged record as well as the
/// damage allows: the first unreadable column is the reason.
pub(crate) fn assemble(
    stream_type: Result<String, String>,
    stream_id: Result<String, String>,
    version: Result<u64, String>,
    rest: Result<RecordedEvent, String>,
) -> Result<RecordedEvent, StoreError> {
    match (stream_type, stream_id, version, rest) {
        (Ok(stream_type), Ok(stream_id), Ok(version), Ok(event)) => Ok(RecordedEvent {
            stream_type,
            stream_id,
            version,
            ..event
        }),
        (stream_type, stream_id, version, rest) => {
            let reason = [
                stream_type.as_ref().err(),
                stream_id.as_ref().err(),
                version.as_ref().err(),
                rest.as_ref().err(),
            ]
            .into_iter()
            .flatten()
            .next()
            .cloned()
            .unwrap_or_default();
            Err(StoreError::Corrupt {
                stream_type: stream_type.unwrap_or_else(|_| "<unreadable>".into()),
                stream_id: stream_id.unwrap_or_else(|_| "<unreadable>".into()),
                version: version.unwrap_or(0),
                reason,
            })
        }
    }
}
