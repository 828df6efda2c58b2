//! The bank through the runtime: the talk's account, end to end, on the
//! in-memory store and on SQLite.

use factum::store::{AppendRequest, EventMetadata, EventStore, NewEvent, Snapshot};
use factum::testkit::{given, given_nothing};
use factum::{App, Codec, CommandError, LoadError, MemoryStore, SqliteStore, Timestamp, Uuid};
use factum_examples::bank::{
    Account, AccountError, AccountEvent, Close, Deposit, Deposited, Open, Opened, Withdraw, Withdrawn,
};

fn opened() -> AccountEvent {
    Opened {
        owner: "Ada".into(),
        number: 12345678,
    }
    .into()
}

#[test]
fn an_open_account_takes_deposits() {
    given::<Account>([opened()])
        .when(Deposit { amount: 500 })
        .then([Deposited { amount: 500 }.into()]);
}

#[test]
fn an_overdraft_is_refused_and_nothing_happens() {
    given::<Account>([opened(), Deposited { amount: 100 }.into()])
        .when(Withdraw { amount: 101 })
        .then_rejected(AccountError::Insufficient {
            balance: 100,
            requested: 101,
        });
}

#[test]
fn a_withdrawal_records_the_commands_time_not_the_wall_clock() {
    let at = Timestamp::parse("2030-05-01T09:00:00Z").unwrap();
    given::<Account>([opened(), Deposited { amount: 100 }.into()])
        .at(at)
        .when(Withdraw { amount: 40 })
        .then([Withdrawn { amount: 40, at }.into()])
        .then_state(|account| assert_eq!(account.balance, 60));
}

#[test]
fn a_closed_account_refuses_everything() {
    given::<Account>([opened()])
        .when(Close)
        .then_state(|a| assert!(a.closed));
    given::<Account>([opened(), factum_examples::bank::Closed {}.into()])
        .when(Deposit { amount: 1 })
        .then_rejected(AccountError::Closed);
    given_nothing::<Account>()
        .when(Deposit { amount: 1 })
        .then_rejected(AccountError::NotOpen);
}

#[test]
fn the_account_number_comes_from_the_commands_seed() {
    let first = given_nothing::<Account>()
        .when(Open { owner: "Ada".into() })
        .events();
    let again = given_nothing::<Account>()
        .when(Open { owner: "Ada".into() })
        .events();
    assert_eq!(first, again, "same command id, same number");
    let other = given_nothing::<Account>()
        .command_id(Uuid::from_u128(7))
        .when(Open { owner: "Ada".into() })
        .events();
    assert_ne!(first, other, "another command id draws another number");
}

async fn eight_tasks_deposit_into_one_account(app: App, per_task: u64) {
    app.entity::<Account>("acc-1")
        .send(Open { owner: "Ada".into() })
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_task {
                app.entity::<Account>("acc-1")
                    .send(Deposit { amount: 3 })
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let account = app.entity::<Account>("acc-1");
    assert_eq!(account.state().await.unwrap().balance, 8 * per_task * 3);
    let versions: Vec<u64> = account
        .history()
        .await
        .unwrap()
        .iter()
        .map(|r| r.version)
        .collect();
    assert_eq!(
        versions,
        (1..=8 * per_task + 1).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_tasks_sending_1000_deposits_each_lose_nothing_in_memory() {
    eight_tasks_deposit_into_one_account(App::in_memory(), 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_tasks_sending_deposits_lose_nothing_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::options()
        .synchronous(factum::sqlite::Synchronous::Normal)
        .open(dir.path().join("bank.db"))
        .unwrap();
    eight_tasks_deposit_into_one_account(App::new(store), 200).await;
}

#[tokio::test]
async fn a_second_app_on_the_same_file_sees_the_first_apps_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.db");
    {
        let app = App::open(&path).await.unwrap();
        let acc = app.entity::<Account>("acc-1");
        acc.send(Open { owner: "Ada".into() }).await.unwrap();
        acc.send(Deposit { amount: 250 }).await.unwrap();
    }
    let app = App::open(&path).await.unwrap();
    let acc = app.entity::<Account>("acc-1");
    let refused = acc.send(Open { owner: "Ada".into() }).await.unwrap_err();
    assert!(
        matches!(refused, CommandError::Rejected(AccountError::AlreadyOpen)),
        "{refused:?}"
    );
    assert_eq!(acc.state().await.unwrap().balance, 250);
}

#[tokio::test]
async fn snapshots_are_written_every_hundred_events_and_loading_starts_from_them() {
    let store = MemoryStore::new();
    let app = App::new(store.clone());
    let acc = app.entity::<Account>("acc-1");
    acc.send(Open { owner: "Ada".into() }).await.unwrap();
    for _ in 0..249 {
        acc.send(Deposit { amount: 1 }).await.unwrap();
    }
    let snapshot = store
        .load_snapshot("account", "acc-1")
        .await
        .unwrap()
        .expect("a snapshot");
    assert_eq!(snapshot.version, 200);

    // Prove the load uses the snapshot: store a newer one (version 201, with
    // deposit 201 applied) that also carries a marker sum; a fresh app must see
    // the marker plus the 49 deposits after it.
    // A payload is the stamp of the logic that wrote it (a mark, the
    // snapshot_version, the apply fingerprint), a checksum, then the state.
    // An edited state fails the checksum, so the edit is written as snapshots
    // were before they carried one (the first mark, 0xFA 0xC7, no checksum:
    // read unchecked), keeping the stamp, so it is still this program's.
    let (header, body) = snapshot.payload.split_at(18);
    let mut state: Account = Codec::Json.decode(body).unwrap();
    state.balance += 1 + 1_000_000;
    let payload = [
        &[0xFA, 0xC7][..],
        &header[2..14],
        &Codec::Json.encode(&state).unwrap(),
    ]
    .concat();
    store
        .save_snapshot(Snapshot {
            version: 201,
            payload,
            ..snapshot
        })
        .await
        .unwrap();
    let fresh = App::new(store.clone())
        .entity::<Account>("acc-1")
        .state()
        .await
        .unwrap();
    assert_eq!(fresh.balance, 1_000_000 + 249);
}

#[tokio::test]
async fn a_snapshot_that_no_longer_decodes_is_ignored_and_the_state_rebuilt_from_events() {
    let store = MemoryStore::new();
    let app = App::new(store.clone());
    let acc = app.entity::<Account>("acc-1");
    acc.send(Open { owner: "Ada".into() }).await.unwrap();
    acc.send(Deposit { amount: 70 }).await.unwrap();
    store
        .save_snapshot(Snapshot {
            stream_type: "account".into(),
            stream_id: "acc-1".into(),
            version: 2,
            codec: Codec::Json,
            payload: br#"{"an_old_state_shape": true}"#.to_vec(),
        })
        .await
        .unwrap();
    let state = App::new(store).entity::<Account>("acc-1").state().await.unwrap();
    assert_eq!((state.owner.as_str(), state.balance), ("Ada", 70));
}

#[tokio::test]
async fn an_unknown_event_type_in_the_stream_is_an_error_naming_stream_version_and_type() {
    let store = MemoryStore::new();
    let app = App::new(store.clone());
    app.entity::<Account>("acc-1")
        .send(Open { owner: "Ada".into() })
        .await
        .unwrap();
    let metadata = EventMetadata {
        event_id: Uuid::from_u128(1),
        recorded_at: Timestamp::EPOCH,
        command_id: Uuid::from_u128(2),
        causation_id: None,
        correlation_id: Uuid::from_u128(2),
    };
    store
        .append(AppendRequest {
            stream_type: "account".into(),
            stream_id: "acc-1".into(),
            expected_version: 1,
            events: vec![NewEvent {
                event_type: "account.frozen".into(),
                schema_version: 1,
                codec: Codec::Json,
                payload: b"{}".to_vec(),
                metadata,
            }],
        })
        .await
        .unwrap();
    let err = App::new(store)
        .entity::<Account>("acc-1")
        .state()
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::Decode { version: 2, .. }), "{err:?}");
    let message = err.to_string();
    for part in ["account/acc-1", "version 2", "account.frozen"] {
        assert!(message.contains(part), "`{part}` missing from: {message}");
    }
}
