//! Durable timers: a typed command for an entity, sent at a time (design §2
//! "Durable timers"). Scheduled by name, replaced by name, cancelled by
//! name; kept in the same store as the events; fired at least once, after
//! restarts too, by one runner across nodes.
//!
//! What a timer promises:
//! - **Stored before `schedule` returns**, beside the events: in memory for a
//!   [`MemoryStore`](crate::MemoryStore), in the events file for SQLite (at
//!   `synchronous=FULL`, like the events: unlike a view, a timer cannot be
//!   rebuilt from the log), in the events' schema for PostgreSQL. The name is
//!   unique per store: scheduling again under a name *replaces* the timer.
//! - **Fired at least once, in due order per entity.** The runner sends the
//!   command through the command side ([`EntityRef::send_with`](crate::EntityRef::send_with)) with the
//!   command id [`timer_command_id(name, due, schedule)`](crate::ids::timer_command_id),
//!   then records the firing and removes the timer. A process that dies
//!   between the two re-sends the same command id after the restart, which
//!   the command side's de-duplication answers with the first outcome.
//! - **Outcomes.** A committed command is a firing (its version and
//!   position are recorded). A *rejected* command is done too: the rejection
//!   is logged and recorded as the firing's outcome. A send that fails on
//!   the store is retried with backoff (100 ms doubling to 25.6 s, from the
//!   process layer's failure streak); the timer stays pending meanwhile.
//! - **Never dropped silently.** A due timer whose command this process
//!   cannot decode (its entity and command type were never registered, or
//!   the stored JSON no longer fits the type) stays pending, *blocked*, with
//!   an error naming the entity, the command type and what to register;
//!   [`Timers::wait_idle`] fails with it and [`Timers::pending`] shows it.
//!   Registering the type (or a new runner starting) unblocks it.
//! - **One runner across nodes**: the process layer's [`Lease`](crate::process::Lease) —
//!   a PostgreSQL advisory lock per schema, a local lease on memory and SQLite
//!   (one process per SQLite file).
//! - **Virtual time.** With a [`ManualClock`](crate::ManualClock) the runner
//!   wakes when the clock is set or advanced ([`Clock::moves`](crate::Clock::moves)),
//!   and [`Timers::wait_idle`] awaits "everything due by now has fired"
//!   without sleeping; see `factum::testkit::VirtualTime`.
//!   With the wall clock the runner sleeps until the next due time, and
//!   re-reads it at least every 500 ms, so a timer scheduled on another node
//!   fires within about half a second of its time.
//!
//! Finding the decoder after a restart: a stored timer names its entity
//! ([`Entity::NAME`]) and its command type (the Rust type's name without its
//! module path, `Withdraw`). [`schedule`](Timers::schedule) registers the
//! pair in this process; a process that only fires timers scheduled by an
//! earlier one registers it with [`AppBuilder::timer`](crate::AppBuilder::timer)
//! or [`Timers::register`]. Renaming the command type strands its stored
//! timers (reported as above, never dropped); moving it to another module does not.
//!
//! Limits: a name is 1 to [`MAX_NAME`] bytes, a command at most
//! [`MAX_PAYLOAD`] bytes of JSON. Pending timers are bounded by storage, not by
//! the runner: the due ones are read by an index range scan and no timer code
//! runs on the command path, so pending timers cost a command nothing
//! (10,000 pending, callgrind: 4,361 vs 4,478 instructions per memory
//! command, the difference all in glibc's malloc; `examples/timers_hotpath.rs`,
//! `cargo bench -p factum --bench timers`), and 10,000 due in one virtual
//! second fire in one sweep, 256 per store transaction. [`Timers::pending`] returns every pending
//! timer; page with [`Timers::pending_page`] beyond a few hundred thousand.
//!
//! ```
//! # use factum::prelude::*;
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Clone, Debug, Serialize, Deserialize)] pub struct ChargeFee { pub amount: u64 }
//! # #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)] pub struct FeeCharged { pub amount: u64 }
//! # #[derive(Default, Clone, Debug)] pub struct Account { fees: u64 }
//! # #[entity] impl Account {
//! #     #[handle] fn charge(&self, cmd: ChargeFee) -> FeeCharged { FeeCharged { amount: cmd.amount } }
//! #     #[apply] fn charged(&mut self, e: &FeeCharged) { self.fees += e.amount }
//! # }
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = ManualClock::new(Timestamp::parse("2030-01-01T00:00:00Z")?);
//! let app = App::builder().clock(clock.clone()).timer::<Account, ChargeFee>().build();
//! let due = clock.now() + std::time::Duration::from_secs(30 * 86_400);
//! app.timers().schedule::<Account, _>("fee:acc-1", "acc-1", due, ChargeFee { amount: 2 }).await?;
//! assert_eq!(app.timers().pending().await?.len(), 1);
//!
//! clock.advance(std::time::Duration::from_secs(30 * 86_400));
//! app.timers().wait_idle().await?; // everything due by now has fired
//! assert_eq!(app.entity::<Account>("acc-1").version().await?, 1);
//! assert!(app.timers().pending().await?.is_empty());
//! # Ok(()) }
//! ```

mod backend;
mod memory;
mod runner;

pub use backend::{
    After, Firing, FiringOutcome, KEPT_FIRINGS, Settlement, StoredTimer, TimerStore, TimerStoreError,
};
pub use memory::MemoryTimerStore;
pub(crate) use runner::TimerSettings;
pub use runner::{PendingTimer, TimerStatus, Timers};

use crate::entity::Entity;

/// The longest timer name, in bytes.
pub const MAX_NAME: usize = 256;

/// The largest command a timer stores, in bytes of JSON: timers are for
/// commands, not documents (a larger one is refused by [`Timers::schedule`]).
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// What can go wrong with a timer.
#[derive(Debug, thiserror::Error)]
pub enum TimerError {
    /// The app's event store is durable but no timer store was configured:
    /// timers kept in memory would not survive a restart.
    #[error(
        "no timer store is configured for the {backend} event store, and timers kept in memory would not \
         survive a restart; configure one beside the events, e.g. `App::builder().sqlite(path)` \
         (which keeps timers in the events file) or `.timer_store(PostgresTimerStore::connect_in_schema(url, schema).await?)`"
    )]
    NoStore {
        /// The event store's backend.
        backend: &'static str,
    },
    /// The name is empty or too long.
    #[error("timer `{name}`: invalid name: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The target entity id is empty.
    #[error("timer `{name}`: the target {entity_type} id is empty")]
    InvalidEntityId {
        /// The timer.
        name: String,
        /// The entity type.
        entity_type: &'static str,
    },
    /// The command is larger than [`MAX_PAYLOAD`].
    #[error(
        "timer `{name}`: command `{command_type}` for {entity_type} is {size} bytes of JSON, more than the {limit} a timer stores"
    )]
    TooLarge {
        /// The timer.
        name: String,
        /// The entity type.
        entity_type: &'static str,
        /// The command type.
        command_type: String,
        /// Its encoded size.
        size: usize,
        /// [`MAX_PAYLOAD`].
        limit: usize,
    },
    /// The command does not encode as JSON.
    #[error("timer `{name}`: command `{command_type}` for {entity_type} does not encode as JSON: {source}")]
    Encode {
        /// The timer.
        name: String,
        /// The entity type.
        entity_type: &'static str,
        /// The command type.
        command_type: String,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// Two command types of one entity have the same name without their
    /// module paths, so stored timers could not tell them apart.
    #[error(
        "entity {entity_type}: the command types {first} and {second} are both stored as `{command_type}`; rename one to schedule it"
    )]
    AmbiguousCommand {
        /// The entity type.
        entity_type: &'static str,
        /// The shared short name.
        command_type: String,
        /// The type registered first.
        first: &'static str,
        /// The other.
        second: &'static str,
    },
    /// The timer store failed.
    #[error("timers: {context}: {source}")]
    Store {
        /// What was being done.
        context: String,
        /// The store's error.
        #[source]
        source: TimerStoreError,
    },
    /// A due timer cannot fire: nobody registered its entity and command type,
    /// or the stored command no longer decodes. It stays pending.
    #[error("timer `{name}` is due but cannot fire (it stays pending): {error}")]
    Undecodable {
        /// The timer.
        name: String,
        /// The target entity type.
        entity_type: String,
        /// The command type.
        command_type: String,
        /// What is wrong and what to register.
        error: String,
    },
    /// [`Timers::wait_idle`] gave up: the runner failed repeatedly without
    /// getting past a due timer (it keeps retrying in the background).
    #[error("timer `{name}` is due but its firing failed {attempts} times in a row: {error}")]
    Failing {
        /// The earliest due timer.
        name: String,
        /// Consecutive failures.
        attempts: u32,
        /// The last error.
        error: String,
    },
    /// The runner stopped (its app is gone).
    #[error("the timer runner stopped")]
    Stopped,
}

impl TimerError {
    fn store(context: impl Into<String>) -> impl FnOnce(TimerStoreError) -> TimerError {
        let context = context.into();
        move |source| TimerError::Store { context, source }
    }
}

/// How a stored timer names its command type: the Rust type's name with every
/// module path removed (`bank::Withdraw` → `Withdraw`, `a::Wrap<b::Fee>` → `Wrap<Fee>`),
/// so moving a type between modules keeps its stored timers firing.
pub fn command_type_name<C: ?Sized>() -> String {
    short_type_name(std::any::type_name::<C>())
}

fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut path = String::new();
    let flush = |path: &mut String, out: &mut String| {
        out.push_str(path.rsplit("::").next().unwrap_or(""));
        path.clear();
    };
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            path.push(c);
        } else {
            flush(&mut path, &mut out);
            out.push(c);
        }
    }
    flush(&mut path, &mut out);
    out
}

/// The key a decoder is registered under: the entity's stored name and the command's.
fn decoder_key<E: Entity, C>() -> (&'static str, String) {
    (E::NAME, command_type_name::<C>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_type_names_drop_module_paths_everywhere() {
        assert_eq!(short_type_name("bank::account::Withdraw"), "Withdraw");
        assert_eq!(short_type_name("Withdraw"), "Withdraw");
        assert_eq!(short_type_name("a::Wrap<b::c::Fee, u8>"), "Wrap<Fee, u8>");
        assert_eq!(short_type_name("(a::X, [b::Y; 2])"), "(X, [Y; 2])");
        assert_eq!(command_type_name::<String>(), "String");
    }
}
