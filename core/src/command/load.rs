//! Loading an entity: from its latest snapshot and the events after it, or on
//! from the cached version after a conflict; and saving snapshots.

use crate::entity::{Entity, SnapshotRead, SnapshotStamp, open_snapshot, seal_snapshot};
use crate::event::EventSet;
use crate::store::{RecordedEvent, Snapshot};

use super::cache::Loaded;
use super::{CommandError, Committed, EntityRef, LOAD_PAGE, LoadError};

impl<E: Entity> EntityRef<E> {
    /// What command `command_id` committed to this entity before, if it did:
    /// its events, decoded, with the version and position they ended at. The
    /// stored event ids tell whether it was this same command
    /// (`fingerprint`); another command under the id is refused. Brings the
    /// cache up to the stored outcome, which another node may have written.
    pub(super) async fn original_outcome(
        &self,
        slot: &mut Loaded<E>,
        command_id: uuid::Uuid,
        fingerprint: u64,
    ) -> Result<Option<Committed<E>>, CommandError<E::Error>> {
        let stored = self
            .commands
            .env
            .store()
            .command_events(E::NAME, &self.id, command_id)
            .await
            .map_err(LoadError::Store)?;
        let Some(last) = stored.last() else {
            return Ok(None);
        };
        let same = stored.iter().zip(0u64..).all(|(record, index)| {
            let id = record.metadata.event_id;
            // A drawn command id (fingerprint 0) cannot be told apart: taken as the same command.
            id == crate::ids::command_event_id(command_id, fingerprint, index)
                || id == crate::ids::event_id(command_id, index)
        });
        if !same {
            return Err(CommandError::CommandIdReused {
                stream_type: E::NAME,
                stream_id: String::from(&*self.id),
                command_id,
            });
        }
        if slot.version < last.version || !slot.fresh {
            self.catch_up(slot, !slot.fresh).await?;
        }
        let events = stored
            .iter()
            .map(|record| self.decode(record, record.version))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Committed {
            events,
            version: last.version,
            position: last.position,
        }))
    }

    /// Brings the cached state up to the store: from a snapshot and the events
    /// after it when `from_scratch`, else from the cached version on.
    pub(super) async fn catch_up(&self, slot: &mut Loaded<E>, from_scratch: bool) -> Result<(), LoadError> {
        let store = self.commands.env.store();
        // Stale until the end: a failed read or a panicking `apply` part-way
        // leaves a reload from scratch behind, never a half-applied state.
        slot.fresh = false;
        let mut ignored = None;
        if from_scratch {
            slot.state = E::default();
            slot.version = 0;
            if E::SNAPSHOT_EVERY > 0 {
                ignored = self.restore_snapshot(slot).await?;
            }
        }
        loop {
            let page = store
                .read_stream(E::NAME, &self.id, slot.version + 1, LOAD_PAGE)
                .await?;
            let full = page.len() == LOAD_PAGE;
            for record in &page {
                let event = self.decode(record, slot.version + 1)?;
                let state = &mut slot.state;
                crate::unwind::guard(|| state.apply(&event)).map_err(|message| LoadError::ApplyPanicked {
                    stream_type: E::NAME,
                    stream_id: String::from(&*self.id),
                    version: record.version,
                    event_type: record.event_type.clone(),
                    message,
                })?;
                slot.version = record.version;
            }
            if !full {
                break;
            }
        }
        slot.fresh = true;
        // Replace an ignored snapshot now rather than at the next multiple of
        // `snapshot_every`, so later loads stop rebuilding from events. Stores
        // keep only a newer snapshot, so one at the same version stays.
        if ignored.is_some_and(|stale| slot.version > stale) {
            self.save_snapshot(slot).await;
        }
        Ok(())
    }

    /// Restores the stored snapshot when this program's logic wrote it.
    /// Returns the version of a snapshot it ignored (other apply logic, or a
    /// state that no longer decodes), so the caller can replace it.
    async fn restore_snapshot(&self, slot: &mut Loaded<E>) -> Result<Option<u64>, LoadError> {
        let Some(snapshot) = self.commands.env.store().load_snapshot(E::NAME, &self.id).await? else {
            return Ok(None);
        };
        match open_snapshot::<E>(&snapshot) {
            SnapshotRead::State(state) => {
                slot.state = state;
                slot.version = snapshot.version;
                Ok(None)
            }
            SnapshotRead::Stale(stored) => {
                let stored = stored.map_or_else(
                    || "no stamp (written before snapshots carried one)".to_owned(),
                    |s| s.to_string(),
                );
                tracing::warn!(
                    entity = E::NAME,
                    id = %self.id,
                    version = snapshot.version,
                    stored = %stored,
                    expected = %SnapshotStamp::of::<E>(),
                    "snapshot was written by other apply logic (the snapshot_version or the #[apply] code changed); ignoring it and rebuilding from events"
                );
                Ok(Some(snapshot.version))
            }
            SnapshotRead::Undecodable(error) => {
                tracing::warn!(
                    entity = E::NAME,
                    id = %self.id,
                    version = snapshot.version,
                    %error,
                    "snapshot no longer decodes (the state type changed?); rebuilding from events"
                );
                Ok(Some(snapshot.version))
            }
            SnapshotRead::Corrupt(reason) => {
                tracing::warn!(
                    entity = E::NAME,
                    id = %self.id,
                    version = snapshot.version,
                    %reason,
                    "snapshot fails its checksum (torn, zeroed or tampered with); ignoring it and rebuilding from events"
                );
                Ok(Some(snapshot.version))
            }
            SnapshotRead::Unused => Ok(None),
        }
    }

    pub(super) fn decode(&self, record: &RecordedEvent, expected: u64) -> Result<E::Event, LoadError> {
        if record.version != expected {
            return Err(LoadError::Gap {
                stream_type: E::NAME,
                stream_id: String::from(&*self.id),
                expected,
                found: record.version,
            });
        }
        E::Event::decode(
            &record.event_type,
            record.schema_version,
            record.codec,
            &record.payload,
        )
        .map_err(|source| LoadError::Decode {
            stream_type: E::NAME,
            stream_id: String::from(&*self.id),
            version: record.version,
            source,
        })
    }

    /// Stores a snapshot when the version just crossed a multiple of
    /// `snapshot_every`. A failure is logged, never the command's failure.
    pub(super) async fn maybe_snapshot(&self, slot: &Loaded<E>, before: u64) {
        let every = E::SNAPSHOT_EVERY;
        if every == 0 || slot.version / every == before / every {
            return;
        }
        self.save_snapshot(slot).await;
    }

    /// Stores a snapshot of the state at its version. A failure is logged.
    async fn save_snapshot(&self, slot: &Loaded<E>) {
        let codec = self.commands.env.codec();
        let unsealed = Snapshot {
            stream_type: E::NAME.to_owned(),
            stream_id: String::from(&*self.id),
            version: slot.version,
            codec,
            payload: Vec::new(),
        };
        let snapshot = match seal_snapshot(&slot.state, unsealed) {
            Some(Ok(snapshot)) => snapshot,
            Some(Err(error)) => {
                tracing::warn!(entity = E::NAME, id = %self.id, %error, "snapshot does not encode; skipped");
                return;
            }
            None => return,
        };
        if let Err(error) = self.commands.env.store().save_snapshot(snapshot).await {
            tracing::warn!(entity = E::NAME, id = %self.id, %error, "saving a snapshot failed");
        }
    }
}
