//! What an operator does with a consumer's dead letters, over its store
//! alone — so any process can do it (the app's [`ConsumerHandle`](super::ConsumerHandle),
//! the `factum` CLI on another machine): list, redrive, discard. A runner
//! notices a change at its next pass (at once when it is in this process,
//! within half a second otherwise). Each change is a compare-and-set on the
//! letter's state, so an operator and a runner never overwrite each other.

use super::ConsumerError;
use super::backend::{ConsumerStore, ConsumerStoreError, DeadLetter, LetterState};
use crate::time::Timestamp;

fn storage(consumer: &str) -> impl FnOnce(ConsumerStoreError) -> ConsumerError + '_ {
    move |source| ConsumerError::Storage {
        consumer: consumer.to_owned(),
        source,
    }
}

/// The consumer's dead letters in position order, only those in `states` when given.
pub async fn dead_letters(
    store: &dyn ConsumerStore,
    consumer: &str,
    states: Option<&[LetterState]>,
) -> Result<Vec<DeadLetter>, ConsumerError> {
    let mut out: Vec<DeadLetter> = Vec::new();
    loop {
        let page = store
            .letters(consumer, states, out.last().map(|l| l.position), 4096)
            .await
            .map_err(storage(consumer))?;
        let full = page.len() == 4096;
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

/// The letter at `position`, or [`ConsumerStoreError::NoLetter`].
pub async fn letter(
    store: &dyn ConsumerStore,
    consumer: &str,
    position: u64,
) -> Result<DeadLetter, ConsumerError> {
    let page = store
        .letters(consumer, None, position.checked_sub(1), 1)
        .await
        .map_err(storage(consumer))?;
    page.into_iter().find(|l| l.position == position).ok_or_else(|| {
        storage(consumer)(ConsumerStoreError::NoLetter {
            consumer: consumer.to_owned(),
            position,
        })
    })
}

/// Asks for the parked event at `position` to run again (its commands keep
/// their ids, so what already committed is not repeated).
pub async fn redrive(
    store: &dyn ConsumerStore,
    consumer: &str,
    position: u64,
    now: Timestamp,
) -> Result<(), ConsumerError> {
    let mut l = letter(store, consumer, position).await?;
    if l.state != LetterState::Parked {
        return Err(ConsumerError::LetterState {
            consumer: consumer.to_owned(),
            position,
            state: l.state,
            action: "redriven (only a parked letter is; a held one runs by itself after the letter before it)",
        });
    }
    l.state = LetterState::Redrive;
    l.updated_at = now;
    store
        .update(l, LetterState::Parked)
        .await
        .map_err(storage(consumer))
}

/// Asks for every parked event of the consumer to run again; returns how many.
pub async fn redrive_all(
    store: &dyn ConsumerStore,
    consumer: &str,
    now: Timestamp,
) -> Result<usize, ConsumerError> {
    let parked = dead_letters(store, consumer, Some(&[LetterState::Parked])).await?;
    let count = parked.len();
    for mut l in parked {
        l.state = LetterState::Redrive;
        l.updated_at = now;
        store
            .update(l, LetterState::Parked)
            .await
            .map_err(storage(consumer))?;
    }
    Ok(count)
}

/// Gives up the parked or held event at `position`, for `reason` (kept with
/// the letter). Events held behind it then run.
pub async fn discard(
    store: &dyn ConsumerStore,
    consumer: &str,
    position: u64,
    reason: &str,
    now: Timestamp,
) -> Result<(), ConsumerError> {
    if reason.trim().is_empty() {
        return Err(ConsumerError::NoReason {
            consumer: consumer.to_owned(),
            position,
        });
    }
    let mut l = letter(store, consumer, position).await?;
    let expected = l.state;
    if !matches!(expected, LetterState::Parked | LetterState::Held) {
        return Err(ConsumerError::LetterState {
            consumer: consumer.to_owned(),
            position,
            state: expected,
            action: "discarded (only a parked or held letter is)",
        });
    }
    l.state = LetterState::Discarded;
    l.reason = Some(reason.to_owned());
    l.updated_at = now;
    store.update(l, expected).await.map_err(storage(consumer))?;
    tracing::warn!(consumer, position, reason, "dead letter discarded");
    Ok(())
}
