//! What `#[derive(Event)]` and `#[entity]` generate, exercised through
//! `Entity::handle` and `Entity::apply` directly (no runtime, no store).
#![allow(missing_docs)] // a test crate: its `pub` items are fixtures, not an API

use factum::prelude::*;
use factum::{DecodeError, Timestamp};
use serde::{Deserialize, Serialize};

// ---- the domain: a bank account -------------------------------------------

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.opened")]
pub struct Opened {
    pub owner: String,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.deposited")]
pub struct Deposited {
    pub amount: u64,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.withdrawn")]
pub struct Withdrawn {
    pub amount: u64,
    pub at: Timestamp,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.fee_charged")]
pub struct FeeCharged {
    pub amount: u64,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "account.closed")]
pub struct Closed;

#[derive(Clone, Debug)]
pub struct Open {
    pub owner: String,
}
#[derive(Clone, Debug)]
pub struct Deposit {
    pub amount: u64,
}
#[derive(Clone, Debug)]
pub struct Withdraw {
    pub amount: u64,
}
#[derive(Clone, Debug)]
pub struct DepositMany {
    pub amounts: Vec<u64>,
}
#[derive(Clone, Debug)]
pub struct Close;
#[derive(Clone, Debug)]
pub struct Touch;
#[derive(Clone, Debug)]
pub struct Audit;

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum AccountError {
    #[error("the account is not open")]
    NotOpen,
    #[error("the balance is too low")]
    Insufficient,
}

/// A rejection of another handler, converted into `AccountError` by `From`.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("already closed")]
pub struct AlreadyClosed;

impl From<AlreadyClosed> for AccountError {
    fn from(_: AlreadyClosed) -> Self {
        AccountError::NotOpen
    }
}

#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    owner: String,
    balance: u64,
    open: bool,
    touched: u32,
}

#[entity(name = "account", snapshot_every = 100)]
impl Account {
    /// One event, infallible.
    #[handle]
    fn open(&self, cmd: Open) -> Opened {
        Opened { owner: cmd.owner }
    }

    /// One event or a rejection.
    #[handle]
    fn deposit(&self, cmd: Deposit) -> Result<Deposited, AccountError> {
        if !self.open {
            return Err(AccountError::NotOpen);
        }
        Ok(Deposited { amount: cmd.amount })
    }

    /// A tuple of events, with the context.
    #[handle]
    fn withdraw(&self, cmd: Withdraw, ctx: &Context) -> Result<(Withdrawn, FeeCharged), AccountError> {
        if self.balance < cmd.amount + 1 {
            return Err(AccountError::Insufficient);
        }
        Ok((
            Withdrawn {
                amount: cmd.amount,
                at: ctx.now(),
            },
            FeeCharged { amount: 1 },
        ))
    }

    /// A `Vec` of the event enum.
    #[handle]
    fn deposit_many(&self, cmd: DepositMany) -> Vec<AccountEvent> {
        cmd.amounts
            .into_iter()
            .map(|amount| Deposited { amount }.into())
            .collect()
    }

    /// `Option`, with a rejection of another type converted by `From`.
    #[handle]
    fn close(&self, _cmd: Close) -> Result<Option<Closed>, AlreadyClosed> {
        if !self.open {
            return Err(AlreadyClosed);
        }
        Ok((self.balance == 0).then_some(Closed))
    }

    /// Nothing to do, written as `()`.
    #[handle]
    fn touch(&self, _cmd: Touch) {}

    /// Nothing to do, written as an empty `Vec`.
    #[handle]
    fn audit(&self, _cmd: Audit) -> Result<Vec<AccountEvent>, AccountError> {
        Ok(Vec::new())
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        self.owner = e.owner.clone();
        self.open = true;
    }

    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }

    #[apply]
    fn withdrawn(&mut self, e: &Withdrawn) {
        self.balance -= e.amount;
    }

    #[apply]
    fn fee_charged(&mut self, e: &FeeCharged) {
        self.balance -= e.amount;
        self.touched += 1;
    }

    #[apply]
    fn closed(&mut self, _e: &Closed) {
        self.open = false;
    }

    /// Not a handler: left as written.
    pub fn balance(&self) -> u64 {
        self.balance
    }
}

fn ctx() -> Context {
    Context::new(uuid_from(7), Timestamp::from_secs(1_700_000_000), "acc-1", 0)
}

fn uuid_from(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}

/// Given these events, the state they fold into.
fn given(events: &[AccountEvent]) -> Account {
    let mut account = Account::default();
    for e in events {
        Entity::apply(&mut account, e);
    }
    account
}

fn when(account: &Account, cmd: impl Into<AccountCommand>) -> Result<Vec<AccountEvent>, AccountError> {
    Entity::handle(account, cmd.into(), &ctx())
}

fn opened() -> AccountEvent {
    Opened { owner: "ada".into() }.into()
}

// ---- return shapes --------------------------------------------------------

#[test]
fn a_handler_returning_one_event_gives_that_event() {
    let account = given(&[]);
    let events = when(&account, Open { owner: "ada".into() }).unwrap();
    assert_eq!(events, vec![opened()]);
}

#[test]
fn a_fallible_handler_returning_ok_gives_its_event() {
    let account = given(&[opened()]);
    let events = when(&account, Deposit { amount: 10 }).unwrap();
    assert_eq!(events, vec![AccountEvent::Deposited(Deposited { amount: 10 })]);
}

#[test]
fn a_handler_returning_a_tuple_gives_its_events_in_order_and_reads_the_context() {
    let account = given(&[opened(), Deposited { amount: 10 }.into()]);
    let events = when(&account, Withdraw { amount: 4 }).unwrap();
    assert_eq!(
        events,
        vec![
            AccountEvent::Withdrawn(Withdrawn {
                amount: 4,
                at: Timestamp::from_secs(1_700_000_000)
            }),
            AccountEvent::FeeCharged(FeeCharged { amount: 1 }),
        ]
    );
}

#[test]
fn a_handler_returning_a_vec_gives_every_event() {
    let account = given(&[opened()]);
    let events = when(&account, DepositMany { amounts: vec![1, 2] }).unwrap();
    assert_eq!(
        events,
        vec![Deposited { amount: 1 }.into(), Deposited { amount: 2 }.into()]
    );
}

#[test]
fn a_handler_returning_none_or_some_gives_zero_or_one_event() {
    let with_money = given(&[opened(), Deposited { amount: 5 }.into()]);
    assert_eq!(when(&with_money, Close).unwrap(), vec![]);
    let empty = given(&[opened()]);
    assert_eq!(when(&empty, Close).unwrap(), vec![AccountEvent::Closed(Closed)]);
}

#[test]
fn handlers_with_nothing_to_do_give_no_events() {
    let account = given(&[opened()]);
    assert_eq!(when(&account, Touch).unwrap(), vec![]);
    assert_eq!(when(&account, Audit).unwrap(), vec![]);
}

// ---- rejections -----------------------------------------------------------

#[test]
fn a_rejection_is_returned_as_the_entity_error() {
    let account = given(&[]);
    assert_eq!(when(&account, Deposit { amount: 1 }), Err(AccountError::NotOpen));
    let poor = given(&[opened()]);
    assert_eq!(
        when(&poor, Withdraw { amount: 1 }),
        Err(AccountError::Insufficient)
    );
}

#[test]
fn a_rejection_of_another_type_is_converted_with_from() {
    let closed = given(&[]);
    assert_eq!(when(&closed, Close), Err(AccountError::NotOpen));
}

#[test]
fn the_generated_inherent_handle_is_the_same_dispatch() {
    let account = given(&[opened()]);
    let events = account.handle(Deposit { amount: 3 }.into(), &ctx()).unwrap();
    assert_eq!(events, vec![AccountEvent::Deposited(Deposited { amount: 3 })]);
}

// ---- apply ----------------------------------------------------------------

#[test]
fn applying_events_folds_them_into_state() {
    let account = given(&[
        opened(),
        Deposited { amount: 10 }.into(),
        Withdrawn {
            amount: 3,
            at: Timestamp::from_secs(0),
        }
        .into(),
        FeeCharged { amount: 1 }.into(),
    ]);
    assert_eq!(account.balance(), 6);
    assert!(account.open);
    assert_eq!(account.owner, "ada");
}

// ---- the event enum -------------------------------------------------------

#[test]
fn the_entity_declares_its_name_and_snapshot_interval() {
    assert_eq!(<Account as Entity>::NAME, "account");
    assert_eq!(<Account as Entity>::SNAPSHOT_EVERY, 100);
}

#[test]
fn the_event_enum_names_each_event_by_its_stable_name() {
    assert_eq!(
        <AccountEvent as EventSet>::NAMES,
        &[
            "account.opened",
            "account.deposited",
            "account.withdrawn",
            "account.fee_charged",
            "account.closed"
        ]
    );
    let e: AccountEvent = Deposited { amount: 1 }.into();
    assert_eq!(e.name(), "account.deposited");
    assert_eq!(e.schema_version(), 1);
}

#[test]
fn the_event_enum_serializes_with_the_stable_name_as_its_key() {
    let e: AccountEvent = Deposited { amount: 5 }.into();
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json, serde_json::json!({"account.deposited": {"amount": 5}}));
    assert_eq!(serde_json::from_value::<AccountEvent>(json).unwrap(), e);
    let text = serde_json::to_string(&e).unwrap();
    assert_eq!(text, r#"{"account.deposited":{"amount":5}}"#);
    assert_eq!(serde_json::from_str::<AccountEvent>(&text).unwrap(), e);

    // A compact, non-self-describing format reads the same map.
    let bytes = Codec::Postcard.encode(&e).unwrap();
    assert_eq!(Codec::Postcard.decode::<AccountEvent>(&bytes).unwrap(), e);

    let unit: AccountEvent = Closed.into();
    let text = serde_json::to_string(&unit).unwrap();
    assert_eq!(serde_json::from_str::<AccountEvent>(&text).unwrap(), unit);
}

#[test]
fn deserializing_an_unknown_name_or_two_events_in_one_map_is_a_clear_error() {
    let unknown = serde_json::from_str::<AccountEvent>(r#"{"account.exploded": {}}"#)
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("account.exploded"), "{unknown}");
    assert!(unknown.contains("account.deposited"), "{unknown}");

    let two = serde_json::from_str::<AccountEvent>(
        r#"{"account.deposited": {"amount": 1}, "account.deposited": {"amount": 2}}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(two.contains("one-entry map"), "{two}");
    let none = serde_json::from_str::<AccountEvent>("{}")
        .unwrap_err()
        .to_string();
    assert!(none.contains("one-entry map"), "{none}");
}

#[test]
fn the_event_set_encodes_the_payload_and_decodes_it_by_name() {
    let e: AccountEvent = Deposited { amount: 9 }.into();
    for codec in [Codec::Json, Codec::Postcard] {
        let bytes = e.encode(codec).unwrap();
        let back = AccountEvent::decode("account.deposited", 1, codec, &bytes).unwrap();
        assert_eq!(back, e);
    }
    assert_eq!(e.encode(Codec::Json).unwrap(), br#"{"amount":9}"#);
}

#[test]
fn decoding_an_unknown_type_name_is_an_unknown_type_error() {
    let err = AccountEvent::decode("account.exploded", 1, Codec::Json, b"{}").unwrap_err();
    match err {
        DecodeError::UnknownType { event_type, known } => {
            assert_eq!(event_type, "account.exploded");
            assert_eq!(known, <AccountEvent as EventSet>::NAMES);
        }
        other => panic!("expected UnknownType, got {other:?}"),
    }
}

// ---- snapshots ------------------------------------------------------------

#[test]
fn an_entity_with_snapshot_every_encodes_and_decodes_its_state() {
    let account = given(&[opened(), Deposited { amount: 10 }.into()]);
    let bytes = account
        .encode_snapshot(Codec::Json)
        .expect("snapshots enabled")
        .unwrap();
    let back = Account::decode_snapshot(Codec::Json, &bytes)
        .expect("snapshots enabled")
        .unwrap();
    assert_eq!(back, account);
}

mod no_snapshots {
    use super::*;

    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    pub struct Pinged;

    #[derive(Clone, Debug)]
    pub struct Ping;

    /// Not `Serialize`: an entity without `snapshot_every` does not need it.
    #[derive(Default, Clone, Debug)]
    pub struct Pinger {
        pub pings: u32,
    }

    #[entity]
    impl Pinger {
        #[handle]
        fn ping(&self, _cmd: Ping) -> Pinged {
            Pinged
        }

        #[apply]
        fn pinged(&mut self, _e: &Pinged) {
            self.pings += 1;
        }
    }

    #[test]
    fn an_entity_without_snapshot_every_has_no_snapshots_and_a_snake_case_name() {
        assert_eq!(<Pinger as Entity>::SNAPSHOT_EVERY, 0);
        assert_eq!(<Pinger as Entity>::NAME, "pinger");
        assert!(Pinger::default().encode_snapshot(Codec::Json).is_none());
        assert!(Pinger::decode_snapshot(Codec::Json, b"{}").is_none());
        let events = Pinger::default().handle(Ping.into(), &super::ctx()).unwrap();
        assert_eq!(events, vec![PingerEvent::Pinged(Pinged)]);
    }
}

// ---- upcasting ------------------------------------------------------------

mod upcast {
    use super::*;

    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(name = "item.added", version = 1)]
    pub struct ItemAddedV1 {
        pub sku: String,
    }

    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(name = "item.added", version = 2, upcast_from = ItemAddedV1)]
    pub struct ItemAddedV2 {
        pub sku: String,
        pub quantity: u32,
    }

    impl From<ItemAddedV1> for ItemAddedV2 {
        fn from(v1: ItemAddedV1) -> Self {
            ItemAddedV2 {
                sku: v1.sku,
                quantity: 1,
            }
        }
    }

    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(name = "item.added", version = 3, upcast_from = ItemAddedV2)]
    pub struct ItemAdded {
        pub sku: String,
        pub quantity: u32,
        pub gift: bool,
    }

    impl From<ItemAddedV2> for ItemAdded {
        fn from(v2: ItemAddedV2) -> Self {
            ItemAdded {
                sku: v2.sku,
                quantity: v2.quantity,
                gift: false,
            }
        }
    }

    #[test]
    fn a_stored_v1_payload_loads_as_v3_through_the_chain() {
        let stored = Codec::Json.encode(&ItemAddedV1 { sku: "tea".into() }).unwrap();
        let loaded = ItemAdded::decode_stored(1, Codec::Json, &stored).unwrap();
        assert_eq!(
            loaded,
            ItemAdded {
                sku: "tea".into(),
                quantity: 1,
                gift: false
            }
        );
    }

    #[test]
    fn a_stored_v2_payload_loads_as_v3_and_a_current_one_as_is() {
        let v2 = Codec::Json
            .encode(&ItemAddedV2 {
                sku: "tea".into(),
                quantity: 4,
            })
            .unwrap();
        assert_eq!(ItemAdded::decode_stored(2, Codec::Json, &v2).unwrap().quantity, 4);
        let v3 = ItemAdded {
            sku: "tea".into(),
            quantity: 2,
            gift: true,
        };
        let bytes = Codec::Json.encode(&v3).unwrap();
        assert_eq!(ItemAdded::decode_stored(3, Codec::Json, &bytes).unwrap(), v3);
    }

    #[test]
    fn a_version_newer_than_the_code_or_older_than_the_chain_is_unknown() {
        for version in [0, 4] {
            match ItemAdded::decode_stored(version, Codec::Json, b"{}") {
                Err(DecodeError::UnknownVersion {
                    event_type, found, ..
                }) => {
                    assert_eq!(event_type, "item.added");
                    assert_eq!(found, version);
                }
                other => panic!("expected UnknownVersion for v{version}, got {other:?}"),
            }
        }
    }

    #[test]
    fn all_versions_share_the_name_and_carry_their_own_version() {
        assert_eq!(ItemAddedV1::NAME, ItemAdded::NAME);
        assert_eq!(
            (ItemAddedV1::VERSION, ItemAddedV2::VERSION, ItemAdded::VERSION),
            (1, 2, 3)
        );
    }
}

// ---- registration ---------------------------------------------------------

#[test]
fn derived_events_are_in_the_catalogue() {
    let deposited = factum::event::catalogue()
        .find(|r| r.name == "account.deposited")
        .expect("account.deposited registered");
    assert_eq!(deposited.version, 1);
    assert_eq!(deposited.rust_type, "Deposited");
    assert!(
        deposited.module_path.ends_with("entity_macro"),
        "{}",
        deposited.module_path
    );
    let versions: Vec<u32> = factum::event::catalogue()
        .filter(|r| r.name == "item.added")
        .map(|r| r.version)
        .collect();
    assert_eq!(versions.len(), 3);
}

#[test]
fn entities_are_in_the_registry_with_their_events() {
    let account = factum::entity::registry()
        .find(|r| r.name == "account")
        .expect("account registered");
    assert_eq!(account.rust_type, "Account");
    assert_eq!(account.events, <AccountEvent as EventSet>::NAMES);
    assert!(factum::entity::registry().any(|r| r.name == "pinger"));
}
