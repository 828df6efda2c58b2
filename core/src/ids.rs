//! Every id and seed factum derives, in one place: event ids, the `Context`
//! seed, the conflict-backoff jitter, the command ids of timer firings and of
//! workflow steps' entity calls.
//!
//! These values are stored (event ids) or replayed (seeds), so they are part
//! of the data format: an append that already committed is acknowledged by
//! comparing event ids, and a decision replays only if its seed is the same.
//! The golden tests below pin them; a change that moves one breaks stored data.

use uuid::Uuid;

/// The id of the `index`-th event of a command sent without a chosen command
/// id: [`command_event_id`] with fingerprint 0.
pub fn event_id(command_id: Uuid, index: u64) -> Uuid {
    command_event_id(command_id, 0, index)
}

/// The id of the `index`-th event of a command: a hash of the command id, the
/// command's [fingerprint](command_fingerprint) and the index, so a retried
/// command writes the same event ids (what lets a store acknowledge an append
/// that already committed instead of calling it a conflict), and the stored
/// ids tell whether a re-sent command id carried the same command.
/// Fingerprint 0 (a command id the runtime drew itself, which nobody can
/// re-send) gives the ids earlier releases wrote.
pub fn command_event_id(command_id: Uuid, fingerprint: u64, index: u64) -> Uuid {
    let (hi, lo) = command_id.as_u64_pair();
    let a = mix64(hi ^ mix64(index) ^ fingerprint);
    let b = mix64(lo.wrapping_add(index.wrapping_mul(GOLDEN)) ^ a);
    uuid::Builder::from_random_bytes((u128::from(a) << 64 | u128::from(b)).to_be_bytes()).into_uuid()
}

/// The command id of the firing of the timer `name` due at `due`, scheduled
/// as `schedule_id` (each scheduling under a name gets a new one, stored with
/// the timer): a hash of the three, so a firing re-sent after a crash (the
/// process died between the send and recording the firing), or by a second
/// runner, carries the same command id, and the command side's
/// de-duplication answers it with the first outcome; a timer scheduled again
/// under the same name and due time is a new firing, not a duplicate.
pub fn timer_command_id(name: &str, due: crate::time::Timestamp, schedule_id: Uuid) -> Uuid {
    let due = due.as_micros() as u64;
    let (s_hi, s_lo) = schedule_id.as_u64_pair();
    // Two independent 64-bit hashes of the name (FNV-1a from two starts), so the
    // id carries 128 bits of the name, not 64.
    let (h1, h2) = (fnv1a(name.as_bytes()), fnv1a_from(TIMER_BASIS, name.as_bytes()));
    let a = mix64(h1 ^ mix64(due ^ TIMER_SALT) ^ s_hi);
    let b = mix64(h2.wrapping_add(due.wrapping_mul(GOLDEN)) ^ a ^ s_lo);
    uuid::Builder::from_random_bytes((u128::from(a) << 64 | u128::from(b)).to_be_bytes()).into_uuid()
}

/// The command id of a consumer's `seq`-th send while handling the event
/// `event_id` (and, with `seq = u64::MAX`, the event's idempotency key for
/// outside calls): a hash of the consumer's name, the event id and `seq`, so
/// a redelivered event (a crash before the checkpoint moved, a redrive)
/// re-sends the same ids, and two consumers of one event send different ones.
pub fn consumer_command_id(consumer: &str, event_id: Uuid, seq: u64) -> Uuid {
    let (e_hi, e_lo) = event_id.as_u64_pair();
    let (h1, h2) = (
        fnv1a_from(CONSUMER_BASIS, consumer.as_bytes()),
        fnv1a(consumer.as_bytes()),
    );
    let a = mix64(h1 ^ mix64(seq ^ CONSUMER_SALT) ^ e_hi);
    let b = mix64(h2.wrapping_add(seq.wrapping_mul(GOLDEN)) ^ a ^ e_lo);
    uuid::Builder::from_random_bytes((u128::from(a) << 64 | u128::from(b)).to_be_bytes()).into_uuid()
}

/// Keeps consumer command ids apart from timer and event ids.
const CONSUMER_SALT: u64 = 0x636f_6e73_756d_6521; // "consume!"
/// The second FNV-1a start for consumer names.
const CONSUMER_BASIS: u64 = 0x2325_8422_9CE4_CBF2;
/// The command id of the `call`-th entity call (from 0) a workflow step
/// makes: a hash of the workflow's name, the instance id, the step, the
/// step's sequence number in the instance and the call's index — not the
/// attempt — so a step re-run after a crash, or retried after a failure,
/// sends its calls under the ids of the first run, and the command side's
/// de-duplication gives each call its effect once. Each string is hashed
/// with its length, so no two (workflow, id, step) triples share a hash input.
pub fn workflow_command_id(workflow: &str, id: &str, step: &str, seq: u64, call: u64) -> Uuid {
    let feed = |basis: u64| {
        [workflow, id, step].iter().fold(basis, |h, s| {
            let h = fnv1a_from(h, &(s.len() as u64).to_le_bytes());
            fnv1a_from(h, s.as_bytes())
        })
    };
    let (h1, h2) = (feed(FNV_OFFSET), feed(WORKFLOW_BASIS));
    let a = mix64(h1 ^ mix64(seq ^ WORKFLOW_SALT) ^ call.wrapping_mul(GOLDEN));
    let b = mix64(h2.wrapping_add(seq.wrapping_mul(GOLDEN)) ^ a ^ mix64(call));
    uuid::Builder::from_random_bytes((u128::from(a) << 64 | u128::from(b)).to_be_bytes()).into_uuid()
}

/// Keeps workflow command ids apart from other ids derived from the same numbers.
const WORKFLOW_SALT: u64 = 0x776f_726b_666c_6f77; // "workflow"
/// The second FNV-1a start for workflow command ids.
const WORKFLOW_BASIS: u64 = 0x9CE4_8422_2325_CBF2;

/// Keeps timer command ids apart from event ids derived from the same numbers.
const TIMER_SALT: u64 = 0x7469_6d65_7273_2121; // "timers!!"
/// The second FNV-1a start for timer names (the standard basis, mixed once).
const TIMER_BASIS: u64 = 0x8422_2325_CBF2_9CE4;

/// The seed of a command's random numbers: the command id, the entity id and
/// the version it is decided at, so one command id fanned out to two entities
/// (or decided at two versions) draws different numbers.
pub(crate) fn context_seed(command_id: Uuid, entity_id: &str, version: u64) -> u64 {
    let (hi, lo) = command_id.as_u64_pair();
    hi ^ lo.rotate_left(32) ^ fnv1a(entity_id.as_bytes()).rotate_left(17) ^ version.wrapping_mul(GOLDEN)
}

/// One step of splitmix64: advances `state` and returns the next number.
pub(crate) fn splitmix_next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GOLDEN);
    mix64(*state)
}

/// A jitter in `0..ceiling` that differs per command and attempt, so
/// competing commands pull apart instead of retrying in step.
pub(crate) fn jitter(command_id: Uuid, attempt: u32, ceiling: u64) -> u64 {
    let (_, lo) = command_id.as_u64_pair();
    mix64(lo ^ u64::from(attempt)) % ceiling.max(1)
}

/// A fingerprint of a command's type and content, never 0: FNV-1a over its
/// `Debug` text (the command enum's `Debug` names the variant, then the
/// fields), hashed as it is formatted, without allocating. Stable while the
/// command type's `Debug` output is: renaming a command or one of its fields
/// changes it, so a command id re-sent across such a change is refused as a
/// different command rather than answered with the old outcome.
pub fn command_fingerprint(command: &dyn std::fmt::Debug) -> u64 {
    use std::fmt::Write;
    struct Fnv(u64);
    impl Write for Fnv {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 = fnv1a_from(self.0, s.as_bytes());
            Ok(())
        }
    }
    let mut h = Fnv(FNV_OFFSET);
    // Writing into a hasher cannot fail; a `Debug` impl that errors still leaves a hash.
    let _ = write!(h, "{command:?}");
    h.0 | 1
}

/// 2^64 / φ: the splitmix increment.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The splitmix64 finaliser: a bijection on `u64` with good avalanche.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a: stable across Rust versions and platforms, unlike std's hasher,
/// so a stored decision replays the same everywhere.
fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_from(FNV_OFFSET, bytes)
}

const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;

fn fnv1a_from(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01B3))
}

#[cfg(test)]
mod tests {
    //! Golden values: if one of these fails, stored event ids or replayed
    //! decisions no longer match what earlier releases wrote.
    use super::*;

    const COMMAND: Uuid = Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
    /// `command_fingerprint(&Withdraw { amount: 5 })`.
    const FINGERPRINT: u64 = 7_420_776_926_747_899_257;
    const FINGERPRINTED_ID: &str = "3069a278-8e77-4aaf-8bdf-21f535ffc677";

    #[test]
    fn event_ids_are_pinned() {
        assert_eq!(
            event_id(COMMAND, 0).to_string(),
            "b2c058e4-ebb5-412c-a0e1-eaaae134deaa",
            "event id of index 0"
        );
        assert_eq!(
            event_id(COMMAND, 1).to_string(),
            "bb8709d4-7de6-4656-9864-1ba6c648986c",
            "event id of index 1"
        );
        assert_eq!(
            event_id(Uuid::nil(), 0).to_string(),
            "00000000-0000-4000-8000-000000000000"
        );
    }

    #[test]
    fn fingerprinted_event_ids_are_pinned() {
        #[derive(Debug)]
        #[allow(dead_code, reason = "read through Debug only")]
        struct Withdraw {
            amount: u64,
        }
        let fp = command_fingerprint(&Withdraw { amount: 5 });
        assert_eq!(fp, FINGERPRINT);
        assert_eq!(
            command_event_id(COMMAND, fp, 0).to_string(),
            FINGERPRINTED_ID,
            "fingerprinted event id of index 0"
        );
        assert_ne!(fp, command_fingerprint(&Withdraw { amount: 6 }));
        assert_eq!(command_event_id(COMMAND, 0, 1), event_id(COMMAND, 1));
    }

    #[test]
    fn context_seeds_are_pinned() {
        assert_eq!(context_seed(COMMAND, "acc-1", 0), 15_349_532_991_901_556_639);
        assert_eq!(context_seed(COMMAND, "acc-2", 0), 16_070_108_931_841_351_583);
        assert_eq!(context_seed(COMMAND, "acc-1", 7), 9_691_793_660_750_281_484);
    }

    #[test]
    fn splitmix_sequence_is_pinned() {
        let mut state = 42;
        assert_eq!(
            [splitmix_next(&mut state), splitmix_next(&mut state)],
            [13_679_457_532_755_275_413, 2_949_826_092_126_892_291]
        );
    }

    #[test]
    fn consumer_command_ids_are_pinned() {
        let event = Uuid::from_u128(0x5c4e_d01e_0000_4000_8000_0000_0000_0002);
        let first = consumer_command_id("fraud_check", event, 0);
        assert_eq!(
            first.to_string(),
            "72889f09-88cc-4d50-bcf5-af597e9abfcf",
            "fraud_check, send 0"
        );
        assert_eq!(
            consumer_command_id("fraud_check", event, 1).to_string(),
            "cb271d23-e779-435d-bdc5-5b451922ec7b",
            "fraud_check, send 1"
        );
        assert_ne!(first, consumer_command_id("notifier", event, 0), "per consumer");
        assert_ne!(first, consumer_command_id("fraud_check", COMMAND, 0), "per event");
        assert_ne!(
            first,
            timer_command_id("fraud_check", crate::time::Timestamp::EPOCH, event)
        );
    }

    #[test]
    fn timer_command_ids_are_pinned() {
        use crate::time::Timestamp;
        let due = Timestamp::from_secs(1_767_225_600);
        let schedule = Uuid::from_u128(0x5c4e_d01e_0000_4000_8000_0000_0000_0001);
        assert_eq!(
            timer_command_id("fee:acc-1", due, schedule).to_string(),
            "b0aa36c9-9abe-4e5e-bf61-6209b2752e32",
            "timer fee:acc-1 at 2026-01-01"
        );
        assert_eq!(
            timer_command_id("fee:acc-1", Timestamp::EPOCH, schedule).to_string(),
            "28d1e0e5-d0d1-4c41-b80e-0f458fd84156"
        );
        assert_eq!(
            timer_command_id("", Timestamp::EPOCH, schedule).to_string(),
            "b0e80e7b-8afe-4544-802a-9f15c892e370"
        );
        assert_ne!(
            timer_command_id("fee:acc-1", due, schedule),
            timer_command_id("fee:acc-1", due, Uuid::nil()),
            "a new scheduling under one name and due time is a new firing"
        );
    }

    #[test]
    fn a_timer_command_id_differs_by_name_and_by_due_time() {
        use crate::time::Timestamp;
        let due = Timestamp::from_secs(60);
        let id = timer_command_id("fee:acc-1", due, Uuid::nil());
        assert_eq!(
            id,
            timer_command_id("fee:acc-1", due, Uuid::nil()),
            "the same firing, the same id"
        );
        assert_ne!(id, timer_command_id("fee:acc-2", due, Uuid::nil()));
        assert_ne!(
            id,
            timer_command_id("fee:acc-1", Timestamp::from_micros(60_000_001), Uuid::nil())
        );
        assert_ne!(id, event_id(id, 0));
    }

    #[test]
    fn workflow_command_ids_are_pinned() {
        assert_eq!(
            workflow_command_id("transfer", "t-1", "withdraw", 1, 0).to_string(),
            "f9b2e3b8-6656-4ab0-862e-09629ba9cbfc",
            "the first call of transfer t-1's first step"
        );
        assert_eq!(
            workflow_command_id("transfer", "t-1", "deposit", 2, 0).to_string(),
            "17db2a6c-962a-48e9-bf12-1eff580444b5"
        );
        assert_eq!(
            workflow_command_id("", "", "", 0, 0).to_string(),
            "1b4fc255-65ac-407a-846f-34de52eb0c0f"
        );
    }

    #[test]
    fn a_workflow_command_id_differs_by_every_part_but_not_by_attempt() {
        let id = workflow_command_id("transfer", "t-1", "withdraw", 1, 0);
        assert_eq!(id, workflow_command_id("transfer", "t-1", "withdraw", 1, 0));
        assert_ne!(id, workflow_command_id("transfer", "t-2", "withdraw", 1, 0));
        assert_ne!(id, workflow_command_id("transfer", "t-1", "deposit", 1, 0));
        assert_ne!(id, workflow_command_id("transfer", "t-1", "withdraw", 2, 0));
        assert_ne!(id, workflow_command_id("transfer", "t-1", "withdraw", 1, 1));
        assert_ne!(id, workflow_command_id("payment", "t-1", "withdraw", 1, 0));
        // Lengths are hashed too: moving a character from one part to the next is another id.
        assert_ne!(
            workflow_command_id("ab", "c", "s", 1, 0),
            workflow_command_id("a", "bc", "s", 1, 0)
        );
    }

    #[test]
    fn one_command_fanned_out_seeds_each_entity_and_version_differently() {
        let a = context_seed(COMMAND, "acc-1", 0);
        assert_ne!(a, context_seed(COMMAND, "acc-2", 0));
        assert_ne!(a, context_seed(COMMAND, "acc-1", 1));
    }
}
