//! Generated code must not be captured by the user's own names: an entity, a
//! view, a workflow and their events declared in a module that shadows the prelude still
//! compile and work.
#![allow(missing_docs)] // a test crate: its `pub` items are fixtures, not an API
#![allow(dead_code, non_snake_case, clippy::all)] // the shadowing items exist only to be in scope

mod shadowed {
    use ::factum::view::{EventMeta, ViewOp};
    use ::factum::{Context, Entity, Event};

    // Every prelude name generated code could reach for, shadowed.
    pub struct Result<T, E>(T, E);
    pub struct Option;
    pub struct Vec;
    pub struct Box;
    pub struct String;
    pub struct Default;
    pub struct From;
    pub struct Into;
    pub struct Clone;
    pub struct Debug;
    pub struct PartialEq;
    pub struct ToString;
    pub struct ToOwned;
    pub struct Deref;
    pub fn Some() {}
    pub fn None() {}
    pub fn Ok() {}
    pub fn Err() {}
    pub mod core {}
    pub mod std {}
    pub mod serde {}
    pub mod factum {}

    #[derive(
        Event,
        ::serde::Serialize,
        ::serde::Deserialize,
        ::core::clone::Clone,
        ::core::fmt::Debug,
        ::core::cmp::PartialEq,
    )]
    #[event(name = "counter.added")]
    pub struct Added {
        pub by: u32,
    }

    #[derive(
        Event,
        ::serde::Serialize,
        ::serde::Deserialize,
        ::core::clone::Clone,
        ::core::fmt::Debug,
        ::core::cmp::PartialEq,
    )]
    #[event(name = "counter.added", version = 2, upcast_from = Added)]
    pub struct AddedV2 {
        pub by: u64,
    }

    impl ::core::convert::From<Added> for AddedV2 {
        fn from(v1: Added) -> Self {
            AddedV2 { by: u64::from(v1.by) }
        }
    }

    #[derive(
        Event,
        ::serde::Serialize,
        ::serde::Deserialize,
        ::core::clone::Clone,
        ::core::fmt::Debug,
        ::core::cmp::PartialEq,
    )]
    pub struct Reset;

    #[derive(::core::clone::Clone, ::core::fmt::Debug)]
    pub struct Add(pub u64);

    #[derive(::core::clone::Clone, ::core::fmt::Debug)]
    pub struct ResetCounter;

    #[derive(::core::fmt::Debug, ::core::cmp::PartialEq)]
    pub struct TooBig;

    impl ::core::fmt::Display for TooBig {
        fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
            f.write_str("too big")
        }
    }

    impl ::std::error::Error for TooBig {}

    #[derive(
        ::core::default::Default,
        ::core::clone::Clone,
        ::core::fmt::Debug,
        ::serde::Serialize,
        ::serde::Deserialize,
    )]
    pub struct Counter {
        pub total: u64,
    }

    #[::factum::entity(snapshot_every = 10)]
    impl Counter {
        #[handle]
        fn add(&self, cmd: Add, _ctx: &Context) -> ::core::result::Result<AddedV2, TooBig> {
            if cmd.0 > 100 {
                return ::core::result::Result::Err(TooBig);
            }
            ::core::result::Result::Ok(AddedV2 { by: cmd.0 })
        }

        #[handle]
        fn reset(&self, _cmd: ResetCounter) -> (Reset, ::core::option::Option<AddedV2>) {
            (Reset, ::core::option::Option::None)
        }

        #[apply]
        fn added(&mut self, e: &AddedV2) {
            self.total += e.by;
        }

        #[apply]
        fn reset_(&mut self, _e: &Reset) {
            self.total = 0;
        }
    }

    #[derive(
        ::core::default::Default,
        ::core::clone::Clone,
        ::core::fmt::Debug,
        ::core::cmp::PartialEq,
        ::serde::Serialize,
        ::serde::Deserialize,
    )]
    pub struct Totals {
        pub total: u64,
        pub events: u32,
    }

    // Every shape of handler: the default key, a key expression over renamed
    // parameters, the meta, `ViewOp`, and an index.
    #[::factum::view(name = "hygiene_totals", version = 2, index = [total])]
    impl Totals {
        #[on]
        fn added(&mut self, e: &AddedV2, meta: &EventMeta) {
            self.total += e.by;
            self.events += 1;
            let _ = meta.position;
        }

        #[on(key = ::std::format!("{}-{}", m.stream_type, ev.by % 2))]
        fn added_by_parity(&mut self, ev: &AddedV2, m: &EventMeta) {
            self.total += ev.by;
            self.events += 1;
            let _ = m;
        }

        #[on]
        fn reset(&mut self, _e: &Reset) -> ViewOp {
            ViewOp::Delete
        }
    }

    /// Counts additions: a consumer whose generated dispatch must not reach
    /// for the shadowed names either.
    pub struct Tally(pub ::std::sync::Arc<::std::sync::atomic::AtomicU64>);

    #[::factum::consumer(name = "hygiene.tally", max_attempts = 2, backoff_ms = 1)]
    impl Tally {
        #[on]
        async fn added(
            &self,
            e: &AddedV2,
            ctx: &mut ::factum::ConsumerContext,
        ) -> ::core::result::Result<(), &'static str> {
            let _ = ctx.attempt();
            self.0.fetch_add(e.by, ::std::sync::atomic::Ordering::SeqCst);
            ::core::result::Result::Ok(())
        }

        #[on]
        async fn reset(&self, _e: &Reset) -> ::factum::Handled {
            ::factum::Handled::Skip(::std::string::ToString::to_string("resets are not counted"))
        }
    }

    #[derive(::core::clone::Clone, ::core::fmt::Debug)]
    pub struct Begin(pub u64);

    #[derive(::core::clone::Clone, ::core::fmt::Debug)]
    pub struct Go;

    // Every shape of method: a start with the context and a `Result`, a
    // signal, steps with and without input, options, a failover.
    #[::factum::workflow(name = "hygiene_flow")]
    impl Counter {
        #[start]
        fn begin(&self, cmd: Begin, _ctx: &Context) -> ::core::result::Result<::factum::Then<Self>, TooBig> {
            if cmd.0 > 100 {
                return ::core::result::Result::Err(TooBig);
            }
            ::core::result::Result::Ok(::factum::Then::pause().with_state(Counter { total: cmd.0 }))
        }

        #[signal]
        fn go(&self, _cmd: Go) -> ::factum::Then<Self> {
            ::factum::Then::to(Self::count, self.total)
        }

        #[step(timeout = "1s", max_retries = 1, backoff = "10ms", failover = undo)]
        async fn count(
            &self,
            _ctx: &::factum::StepContext,
            by: u64,
        ) -> ::core::result::Result<::factum::Then<Self>, TooBig> {
            ::core::result::Result::Ok(::factum::Then::end().with_state(Counter {
                total: self.total + by,
            }))
        }

        #[step]
        async fn undo(&self, _ctx: &::factum::StepContext) -> ::factum::Then<Self> {
            ::factum::Then::fail("undone")
        }
    }

    /// Uses the names so the shadowing items are not merely declared.
    pub fn check(ctx: &Context) -> u64 {
        let mut counter = <Counter as ::core::default::Default>::default();
        let events = Entity::handle(&counter, CounterCommand::Add(Add(5)), ctx).unwrap();
        for e in &events {
            Entity::apply(&mut counter, e);
        }
        assert!(Entity::handle(&counter, CounterCommand::Add(Add(500)), ctx).is_err());
        counter.total
    }
}

#[test]
fn an_entity_in_a_module_that_shadows_the_prelude_compiles_and_works() {
    use factum::{Codec, EventSet};

    let ctx = factum::Context::new(uuid::Uuid::nil(), factum::Timestamp::from_secs(0), "c-1", 0);
    assert_eq!(shadowed::check(&ctx), 5);

    let e = shadowed::CounterEvent::from(shadowed::AddedV2 { by: 2 });
    let json = serde_json::to_string(&e).unwrap();
    assert_eq!(json, r#"{"counter.added":{"by":2}}"#);
    assert_eq!(serde_json::from_str::<shadowed::CounterEvent>(&json).unwrap(), e);

    let v1 = Codec::Json.encode(&shadowed::Added { by: 3 }).unwrap();
    let loaded = shadowed::CounterEvent::decode("counter.added", 1, Codec::Json, &v1).unwrap();
    assert_eq!(
        loaded,
        shadowed::CounterEvent::AddedV2(shadowed::AddedV2 { by: 3 })
    );
}

#[test]
fn a_view_in_a_module_that_shadows_the_prelude_compiles_and_folds() {
    use factum::View;

    assert_eq!(
        (
            <shadowed::Totals as View>::NAME,
            <shadowed::Totals as View>::VERSION
        ),
        ("hygiene_totals", 2)
    );
    assert_eq!(<shadowed::Totals as View>::INDEXES, ["total"]);
    let rows = factum::testkit::view::<shadowed::Totals>()
        .given("c-1", shadowed::AddedV2 { by: 2 })
        .given("c-1", shadowed::AddedV2 { by: 3 })
        .given("c-2", shadowed::AddedV2 { by: 4 })
        .given("c-2", shadowed::Reset)
        .rows();
    let folded: Vec<(&str, u64, u32)> = rows
        .iter()
        .map(|(key, row)| (key.as_str(), row.total, row.events))
        .collect();
    assert_eq!(
        folded,
        [("c-1", 5, 2), ("test-0", 6, 2), ("test-1", 3, 1)],
        "c-2 was deleted by Reset"
    );
}

#[tokio::test]
async fn a_consumer_in_a_module_that_shadows_the_prelude_compiles_and_handles() {
    use factum::Consumer;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    assert_eq!(<shadowed::Tally as Consumer>::NAME, "hygiene.tally");
    assert_eq!(
        <shadowed::Tally as Consumer>::EVENT_TYPES,
        ["counter.added", "Reset"]
    );
    assert_eq!(<shadowed::Tally as Consumer>::MAX_ATTEMPTS, 2);
    let app = factum::App::in_memory();
    app.entity::<shadowed::Counter>("c-1")
        .send(shadowed::Add(4))
        .await
        .unwrap();
    let total = Arc::new(AtomicU64::new(0));
    let tally = app
        .consumers()
        .start(shadowed::Tally(total.clone()))
        .await
        .unwrap();
    tally.wait_idle().await.unwrap();
    assert_eq!(total.load(Ordering::SeqCst), 4);
}

#[test]
fn the_audit_entries_of_a_shadowed_entity_and_its_events_work() {
    use factum::Codec;

    // The event decoder of a name is its newest version, upcasting older payloads.
    let decoder = factum::audit::event_decoder("counter.added").expect("registered");
    assert_eq!(decoder.version, 2);
    let v1 = Codec::Json.encode(&shadowed::Added { by: 3 }).unwrap();
    assert_eq!(
        decoder.decode(1, Codec::Json, &v1).unwrap(),
        serde_json::json!({"by": 3})
    );

    // The entity's entry: its commands, probed for serde (these are not Deserialize).
    let counter = factum::audit::entity("counter").expect("registered");
    assert_eq!(counter.commands, ["Add", "ResetCounter"]);
    assert!(!counter.command_is_deserializable("Add"));
    assert_eq!(counter.events, ["counter.added", "Reset"]);
}

#[tokio::test]
async fn a_workflow_in_a_module_that_shadows_the_prelude_compiles_and_runs() {
    use factum::workflow::Status;

    let app = factum::App::in_memory();
    let flow = app.workflow::<shadowed::Counter>("w-1");
    flow.start(shadowed::Begin(4)).await.unwrap();
    assert!(matches!(
        flow.wait_settled().await.unwrap(),
        Status::Paused { .. }
    ));
    flow.signal(shadowed::Go).await.unwrap();
    assert_eq!(flow.wait_for_end().await.unwrap(), Status::Ended);
    assert_eq!(flow.state().await.unwrap().map(|c| c.total), Some(8));
    assert_eq!(flow.trail().await.unwrap(), ["paused", "signal Go", "count"]);
}
