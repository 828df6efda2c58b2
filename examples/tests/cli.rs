//! The `factum` binary against a SQLite store the bank example wrote: each
//! command's output, as text or JSON, and that reading commands write nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use factum::prelude::*;
use factum::sqlite::SqliteViewStore;
use factum_examples::bank::{Account, Deposit, Open, TransferIn, TransferOut, Withdraw, dollars};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const T0: &str = "2030-01-01T09:00:00Z";

/// The clock at `hours` after T0.
fn at(hours: f64) -> Timestamp {
    Timestamp::parse(T0).expect("T0 parses") + Duration::from_secs_f64(hours * 3600.0)
}

/// What the bank wrote, and the ids the assertions need.
struct Bank {
    _dir: tempfile::TempDir,
    db: PathBuf,
    transfer: Uuid,
    withdrawal: Uuid,
}

/// Ada: opened at T0, +100.00 at 1h, -30.00 at 2h, +20.00 at 3h, 25.00 to
/// Grace at 4h (one transfer: debit and credit share a correlation id, the
/// credit names the debit as its cause), -10.00 at 5h. Grace: opened, +50.00.
async fn bank() -> Bank {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("bank.db");
    let clock = ManualClock::new(at(0.0));
    let app = App::builder()
        .clock(clock.clone())
        .sqlite(&db)
        .expect("open the store")
        .build();
    let ada = app.entity::<Account>("acc-ada");
    let grace = app.entity::<Account>("acc-grace");
    ada.send(Open { owner: "Ada".into() }).await.expect("open");
    grace
        .send(Open {
            owner: "Grace".into(),
        })
        .await
        .expect("open");
    clock.set(at(1.0));
    ada.send(Deposit { amount: dollars(100) }).await.expect("deposit");
    grace
        .send(Deposit { amount: dollars(50) })
        .await
        .expect("deposit");
    clock.set(at(2.0));
    let withdrawal = Uuid::new_v4();
    ada.send_with(
        Withdraw { amount: dollars(30) },
        SendOptions {
            command_id: Some(withdrawal),
            ..SendOptions::default()
        },
    )
    .await
    .expect("withdraw");
    clock.set(at(3.0));
    ada.send(Deposit { amount: dollars(20) }).await.expect("deposit");
    clock.set(at(4.0));
    let transfer = Uuid::new_v4();
    let both = |cause: Option<Uuid>, id: Option<Uuid>| SendOptions {
        command_id: id,
        causation_id: cause,
        correlation_id: Some(transfer),
    };
    ada.send_with(
        TransferOut {
            to: "acc-grace".into(),
            amount: dollars(25),
        },
        both(None, Some(transfer)),
    )
    .await
    .expect("debit");
    grace
        .send_with(
            TransferIn {
                from: "acc-ada".into(),
                amount: dollars(25),
            },
            both(Some(transfer), None),
        )
        .await
        .expect("credit");
    clock.set(at(5.0));
    ada.send(Withdraw { amount: dollars(10) })
        .await
        .expect("withdraw");
    drop(ada);
    drop(grace);
    drop(app);
    Bank {
        _dir: dir,
        db,
        transfer,
        withdrawal,
    }
}

/// Runs `factum --db <db> args…`; returns stdout, or panics with stderr.
fn factum(db: &Path, args: &[&str]) -> String {
    let (ok, out, err) = factum_status(db, args);
    assert!(ok, "factum {args:?} failed:\n{err}");
    out
}

fn factum_status(db: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_factum"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("run the factum binary");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn json(db: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = factum(db, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("factum {args:?} printed no JSON ({e}):\n{out}"))
}

/// The bytes of the store's files (the database and its WAL, if any).
fn bytes(db: &Path) -> Vec<u8> {
    let mut all = std::fs::read(db).expect("read the database");
    if let Ok(wal) = std::fs::read(db.with_extension("db-wal")) {
        all.extend(wal);
    }
    all
}

#[tokio::test]
async fn history_lists_every_event_with_its_metadata_and_decoded_payload() {
    let bank = bank().await;
    let out = factum(&bank.db, &["history", "account", "acc-ada"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1 + 6, "a header and six events:\n{out}");
    assert!(lines[0].starts_with("version  position  event"), "{out}");
    assert!(lines[3].contains("account.withdrawn") && lines[3].contains("2030-01-01T11:00:00.000000Z"));
    assert!(
        lines[3].contains(r#"{"amount":3000,"at":"2030-01-01T11:00:00.000000Z"}"#),
        "{out}"
    );
    assert!(
        lines[3].contains(&bank.withdrawal.simple().to_string()[..8]),
        "the command id: {out}"
    );

    let json_lines = factum(
        &bank.db,
        &[
            "history", "account", "acc-ada", "--from", "4", "--to", "5", "--json",
        ],
    );
    let events: Vec<Value> = json_lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["version"], 4);
    assert_eq!(events[1]["event_type"], "account.transferred_out");
    assert_eq!(events[1]["correlation_id"], bank.transfer.to_string());
    assert_eq!(events[1]["stored_version"], 1);
    assert_eq!(events[1]["payload"]["to"], "acc-grace");
}

#[tokio::test]
async fn state_at_a_time_between_two_events_is_the_state_after_the_earlier_one() {
    let bank = bank().await;
    // 2h30: after the withdrawal at 2h, before the deposit at 3h.
    let state = json(
        &bank.db,
        &["state", "account", "acc-ada", "--at-time", "2030-01-01T11:30:00Z"],
    );
    assert_eq!(state["version"], 3);
    assert_eq!(state["recorded_at"], "2030-01-01T11:00:00.000000Z");
    assert_eq!(state["state"]["balance"], 7000);
    // Exactly at an event's time includes it.
    let state = json(
        &bank.db,
        &["state", "account", "acc-ada", "--at-time", "2030-01-01T12:00:00Z"],
    );
    assert_eq!(
        (state["version"].clone(), state["state"]["balance"].clone()),
        (4.into(), 9000.into())
    );
    // Before the first event: the empty state.
    let state = json(
        &bank.db,
        &["state", "account", "acc-ada", "--at-time", "2029-12-31T00:00:00Z"],
    );
    assert_eq!(
        (state["version"].clone(), state["state"]["open"].clone()),
        (0.into(), false.into())
    );

    let text = factum(&bank.db, &["state", "account", "acc-ada", "--at-version", "2"]);
    assert!(
        text.starts_with("account/acc-ada at version 2 of 6 (recorded 2030-01-01T10:00:00.000000Z)"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["balance", "10000"]),
        "{text}"
    );
    let now = json(&bank.db, &["state", "account", "acc-ada"]);
    assert_eq!(now["state"]["balance"], 5500);

    let (ok, _, err) = factum_status(&bank.db, &["state", "account", "acc-ada", "--at-version", "9"]);
    assert!(
        !ok && err.contains("stream account/acc-ada is at version 6; there is no version 9"),
        "{err}"
    );
    let (ok, _, err) = factum_status(&bank.db, &["state", "account", "acc-nobody"]);
    assert!(
        !ok && err.contains("stream account/acc-nobody has no events"),
        "{err}"
    );
}

#[tokio::test]
async fn state_from_a_snapshot_equals_the_replay_from_the_first_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("many.db");
    {
        let app = App::open(&db).await.expect("open");
        let acc = app.entity::<Account>("acc-busy");
        acc.send(Open { owner: "Busy".into() }).await.expect("open");
        for i in 1..=150 {
            acc.send(Deposit { amount: i }).await.expect("deposit");
        }
    }
    let snap = json(&db, &["state", "account", "acc-busy"]);
    let replay = json(&db, &["state", "account", "acc-busy", "--replay"]);
    assert_eq!(snap["from_snapshot"], 100, "Account snapshots every 100 events");
    assert_eq!(replay["from_snapshot"], Value::Null);
    assert_eq!(snap["state"], replay["state"]);
    assert_eq!(snap["state"]["balance"], 150 * 151 / 2);
    let at = json(&db, &["state", "account", "acc-busy", "--at-version", "120"]);
    assert_eq!(at["state"]["balance"], 119 * 120 / 2);
}

#[tokio::test]
async fn blame_names_every_event_that_moved_the_balance() {
    let bank = bank().await;
    let blame = json(&bank.db, &["blame", "account", "acc-ada", "balance"]);
    let changes: Vec<(u64, String, u64, u64)> = blame["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                c["event"]["version"].as_u64().expect("version"),
                c["event"]["event_type"].as_str().expect("type").to_owned(),
                c["before"].as_u64().expect("before"),
                c["after"].as_u64().expect("after"),
            )
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            (2, "account.deposited".into(), 0, 10000),
            (3, "account.withdrawn".into(), 10000, 7000),
            (4, "account.deposited".into(), 7000, 9000),
            (5, "account.transferred_out".into(), 9000, 6500),
            (6, "account.withdrawn".into(), 6500, 5500),
        ]
    );
    assert_eq!(blame["current"], 5500);
    assert_eq!(
        blame["changes"][1]["event"]["command_id"],
        bank.withdrawal.to_string()
    );

    let text = factum(&bank.db, &["blame", "account", "acc-ada", "balance"]);
    assert!(
        text.starts_with("account/acc-ada balance: every event that changed it"),
        "{text}"
    );
    assert_eq!(
        text.lines().last(),
        Some("balance = 5500: changed by 5 of 6 event(s)"),
        "{text}"
    );
    let row: Vec<&str> = text
        .lines()
        .nth(3)
        .expect("the withdrawal's row")
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..5],
        [
            "3",
            "2030-01-01T11:00:00.000000Z",
            "account.withdrawn",
            "10000",
            "7000"
        ]
    );

    let owner = json(&bank.db, &["blame", "account", "acc-ada", "owner"]);
    assert_eq!(
        owner["changes"].as_array().map(Vec::len),
        Some(1),
        "only Opened set the owner"
    );
    let closed = json(&bank.db, &["blame", "account", "acc-ada", "closed"]);
    assert_eq!(
        closed["changes"],
        serde_json::json!([]),
        "never changed from its default"
    );
    assert_eq!(
        (closed["current"].clone(), closed["events_folded"].clone()),
        (false.into(), 6.into())
    );
    let (ok, out, err) = factum_status(&bank.db, &["blame", "account", "acc-ada", "colour", "--json"]);
    assert!(
        !ok && err.contains("has a field `colour`") && err.contains("\"balance\""),
        "{err}"
    );
    assert_eq!(out, "", "nothing printed before the error");
}

#[tokio::test]
async fn what_if_an_overdraft_prints_the_rejection_and_writes_nothing() {
    let bank = bank().await;
    let before = bytes(&bank.db);
    let out = factum(
        &bank.db,
        &[
            "what-if",
            "account",
            "acc-ada",
            "--command",
            r#"Withdraw={"amount":100000}"#,
            "--command",
            r#"Withdraw={"amount":5000}"#,
            "--now",
            "2030-02-01T00:00:00Z",
        ],
    );
    assert!(out.contains("nothing is written"), "{out}");
    let rejected = out
        .lines()
        .find(|l| l.contains("Withdraw {\"amount\":100000}"))
        .expect("step 1");
    assert!(rejected.contains("rejected"), "{out}");
    assert!(
        rejected.contains("insufficient funds: the balance is 55.00, 1000.00 was requested"),
        "{out}"
    );
    let accepted = out
        .lines()
        .find(|l| l.contains("Withdraw {\"amount\":5000}"))
        .expect("step 2");
    assert!(
        accepted.contains("accepted") && accepted.contains("account.withdrawn"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["balance", "500"]),
        "the fork's state after the accepted withdrawal:\n{out}"
    );
    assert_eq!(
        bytes(&bank.db),
        before,
        "a what-if must not change the store's bytes"
    );

    // At an earlier version, through the JSON.
    let at2 = json(
        &bank.db,
        &[
            "what-if",
            "account",
            "acc-ada",
            "--at-version",
            "2",
            "--command",
            r#"Withdraw={"amount":10001}"#,
        ],
    );
    assert_eq!(at2["base"]["version"], 2);
    assert_eq!(at2["steps"][0]["outcome"], "rejected");
    assert_eq!(at2["written"], false);
    assert_eq!(bytes(&bank.db), before);

    // The store is what refuses writes: a what-if cannot write even by mistake.
    let store = factum::SqliteStore::open_read_only(&bank.db).expect("open read-only");
    assert!(store.is_read_only());
}

#[tokio::test]
async fn what_if_explains_a_command_that_is_not_deserialize() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("cart.db");
    {
        let app = App::open(&db).await.expect("open");
        app.entity::<factum_examples::cart::Cart>("cart-1")
            .send(factum_examples::cart::AddItem {
                sku: "tea".into(),
                quantity: 1,
            })
            .await
            .expect("add");
    }
    let (ok, _, err) = factum_status(&db, &["what-if", "cart", "cart-1", "--command", "CheckOut"]);
    assert!(!ok, "{err}");
    assert!(
        err.contains("command `CheckOut` of entity `cart` cannot be read from JSON: add `#[derive(serde::Deserialize)]` to `CheckOut`"),
        "{err}"
    );
    let (ok, _, err) = factum_status(&db, &["what-if", "cart", "cart-1", "--command", "Fly={}"]);
    assert!(!ok && err.contains("entity `cart` has no command `Fly`"), "{err}");
}

#[tokio::test]
async fn trace_shows_one_transfer_across_two_accounts_as_a_causation_tree() {
    let bank = bank().await;
    let id = bank.transfer.to_string();
    let trace = json(&bank.db, &["trace", &id]);
    assert_eq!(trace["events"], 2);
    assert_eq!(
        trace["streams"],
        serde_json::json!(["account/acc-ada", "account/acc-grace"])
    );
    let roots = trace["roots"].as_array().expect("roots");
    assert_eq!(roots.len(), 1, "the credit hangs under the debit");
    assert_eq!(roots[0]["command_id"], id);
    assert_eq!(roots[0]["events"][0]["event_type"], "account.transferred_out");
    let credit = &roots[0]["children"][0];
    assert_eq!(credit["causation_id"], id);
    assert_eq!(credit["events"][0]["stream_id"], "acc-grace");
    assert_eq!(credit["events"][0]["event_type"], "account.transferred_in");

    let text = factum(&bank.db, &["trace", &id]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("2 event(s) in 2 stream(s) (account/acc-ada, account/acc-grace)"),
        "{text}"
    );
    assert!(lines[1].starts_with("└─ command "), "{text}");
    assert!(
        lines[2].contains("account/acc-ada v5") && lines[2].contains("account.transferred_out"),
        "{text}"
    );
    assert!(
        lines[3].contains("command") && lines[3].contains("caused by"),
        "{text}"
    );
    assert!(
        lines[4].contains("account/acc-grace v3") && lines[4].contains("account.transferred_in"),
        "{text}"
    );
}

#[tokio::test]
async fn diff_shows_each_changed_field_and_the_events_between() {
    let bank = bank().await;
    let diff = json(&bank.db, &["diff", "account", "acc-ada", "0", "3"]);
    let fields: Vec<&str> = diff["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["path"].as_str())
        .collect();
    assert_eq!(fields, ["balance", "number", "open", "owner"]);
    assert_eq!(diff["events"].as_array().map(Vec::len), Some(3));
    let text = factum(&bank.db, &["diff", "account", "acc-ada", "2", "4"]);
    assert!(
        text.starts_with("account/acc-ada from version 2 to 4: 1 field(s) changed by 2 event(s)"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["balance", "10000", "9000"]),
        "{text}"
    );
    let (ok, _, err) = factum_status(&bank.db, &["diff", "account", "acc-ada", "4", "2"]);
    assert!(!ok && err.contains("wrong order"), "{err}");
}

#[tokio::test]
async fn streams_lists_each_stream_with_its_counts_and_times() {
    let bank = bank().await;
    let streams = json(&bank.db, &["streams", "--type", "account"]);
    assert_eq!(streams.as_array().map(Vec::len), Some(2));
    assert_eq!(streams[0]["stream_id"], "acc-ada");
    assert_eq!(streams[0]["events"], 6);
    assert_eq!(streams[0]["first_recorded_at"], "2030-01-01T09:00:00.000000Z");
    assert_eq!(streams[0]["last_recorded_at"], "2030-01-01T14:00:00.000000Z");
    assert_eq!(streams[1]["version"], 3);
    let text = factum(&bank.db, &["streams"]);
    assert!(
        text.lines()
            .next()
            .is_some_and(|l| l.starts_with("stream type  streams  events")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["account", "2", "9"]),
        "{text}"
    );
}

#[test]
fn catalogue_lists_events_entities_and_views() {
    let out = Command::new(env!("CARGO_BIN_EXE_factum"))
        .args(["catalogue", "--json"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let catalogue: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let account = catalogue["entities"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["name"] == "account"))
        .expect("the account entity");
    assert_eq!(account["commands"][2], serde_json::json!(["Withdraw", true]));
    let cart = catalogue["entities"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["name"] == "cart"))
        .expect("the cart entity");
    assert_eq!(
        cart["commands"][0],
        serde_json::json!(["AddItem", false]),
        "cart commands are not serde types"
    );
    let summary = catalogue["views"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == "account_summary"))
        .expect("the account_summary view");
    assert_eq!(summary["indexes"], serde_json::json!(["owner"]));
    assert!(
        summary["events"]
            .as_array()
            .is_some_and(|e| e.contains(&"account.withdrawn".into()))
    );
    let deposited = catalogue["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["name"] == "account.deposited"))
        .expect("account.deposited");
    assert_eq!(deposited["upcast"], "1");
}

/// The old logic of `account_summary`: transfers did not count as deposits or
/// withdrawals. The `factum` binary has the new logic (`bank::AccountSummary`).
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OldSummary {
    /// Who owns it.
    pub owner: String,
    /// Its number.
    pub number: u32,
    /// Cents.
    pub balance: u64,
    /// Deposits, transfers not counted.
    pub deposits: u32,
    /// Withdrawals, transfers not counted.
    pub withdrawals: u32,
    /// When it last changed.
    pub last_activity: Timestamp,
    /// Closed for good.
    pub closed: bool,
}

#[view(name = "account_summary", version = 1, index = [owner])]
impl OldSummary {
    #[on]
    fn opened(&mut self, e: &factum_examples::bank::Opened, meta: &EventMeta) {
        self.owner = e.owner.clone();
        self.number = e.number;
        self.last_activity = meta.recorded_at;
    }

    #[on]
    fn deposited(&mut self, e: &factum_examples::bank::Deposited, meta: &EventMeta) {
        self.balance += e.amount;
        self.deposits += 1;
        self.last_activity = meta.recorded_at;
    }

    #[on]
    fn withdrawn(&mut self, e: &factum_examples::bank::Withdrawn, meta: &EventMeta) {
        self.balance = self.balance.saturating_sub(e.amount);
        self.withdrawals += 1;
        self.last_activity = meta.recorded_at;
    }

    #[on]
    fn transferred_out(&mut self, e: &factum_examples::bank::TransferredOut, meta: &EventMeta) {
        self.balance = self.balance.saturating_sub(e.amount);
        self.last_activity = meta.recorded_at;
    }

    #[on]
    fn transferred_in(&mut self, e: &factum_examples::bank::TransferredIn, meta: &EventMeta) {
        self.balance += e.amount;
        self.last_activity = meta.recorded_at;
    }
}

#[tokio::test]
async fn diff_view_shows_what_new_view_logic_changes_before_the_swap() {
    let bank = bank().await;
    {
        // The live table, folded by the old logic.
        let app = App::builder()
            .sqlite(&bank.db)
            .expect("open")
            .view_store(SqliteViewStore::open(&bank.db).expect("view store"))
            .build();
        app.start_view::<OldSummary>().await.expect("start");
        let head = app.store().head().await.expect("head");
        app.view::<OldSummary>().wait_for(head).await.expect("caught up");
    }
    let (ok, _, err) = factum_status(&bank.db, &["diff-view", "account_summary"]);
    assert!(!ok && err.contains("run `rebuild-view` first"), "{err}");

    let built = json(&bank.db, &["rebuild-view", "account_summary"]);
    assert_eq!(built["state"], "building");
    assert_eq!(built["position"], 9);
    let diff = json(&bank.db, &["diff-view", "account_summary"]);
    assert_eq!(diff["live"]["build"], 0);
    assert_eq!(diff["rebuilt"]["build"], 1);
    assert_eq!(diff["unchanged"], 0);
    let changed: Vec<(String, String, u64, u64)> = diff["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .flat_map(|row| {
            row["fields"].as_array().into_iter().flatten().map(move |f| {
                (
                    row["key"].as_str().unwrap_or_default().to_owned(),
                    f["path"].as_str().unwrap_or_default().to_owned(),
                    f["before"].as_u64().unwrap_or(u64::MAX),
                    f["after"].as_u64().unwrap_or(u64::MAX),
                )
            })
        })
        .collect();
    assert_eq!(
        changed,
        vec![
            ("acc-ada".into(), "withdrawals".into(), 2, 3),
            ("acc-grace".into(), "deposits".into(), 1, 2),
        ]
    );
    let text = factum(&bank.db, &["diff-view", "account_summary"]);
    assert!(text.contains("2 row(s) differ, 0 unchanged"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["acc-grace", "changed", "deposits", "1", "2"]),
        "{text}"
    );

    let swapped = json(&bank.db, &["swap-view", "account_summary"]);
    assert_eq!(
        (swapped["state"].clone(), swapped["build"].clone()),
        ("active".into(), 1.into())
    );
    let (ok, _, err) = factum_status(&bank.db, &["diff-view", "account_summary"]);
    assert!(
        !ok && err.contains("run `rebuild-view` first"),
        "after the swap nothing is beside it: {err}"
    );
    let (ok, _, err) = factum_status(&bank.db, &["rebuild-view", "account_summary", "--version", "7"]);
    assert!(
        !ok && err.contains("this program has version 1 of view account_summary, not 7"),
        "{err}"
    );
    let (ok, _, err) = factum_status(&bank.db, &["diff-view", "no_such_view"]);
    assert!(!ok && err.contains("no view is named `no_such_view`"), "{err}");
}

#[tokio::test]
#[cfg_attr(not(factum_pg), ignore = "set FACTUM_PG_URL to run the PostgreSQL test")]
async fn history_and_state_over_postgres() {
    let url = std::env::var("FACTUM_PG_URL").expect("FACTUM_PG_URL is set in a factum_pg build");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let schema = format!("factum_t_cli_{}_{nanos}", std::process::id());
    let clock = ManualClock::new(at(0.0));
    {
        let store = factum::PostgresStore::connect(url.clone())
            .schema(schema.clone())
            .open()
            .await
            .expect("connect");
        let app = App::builder().clock(clock.clone()).store(store).build();
        let ada = app.entity::<Account>("acc-ada");
        ada.send(Open { owner: "Ada".into() }).await.expect("open");
        clock.set(at(1.0));
        ada.send(Deposit { amount: dollars(100) }).await.expect("deposit");
        clock.set(at(2.0));
        ada.send(Withdraw { amount: dollars(40) })
            .await
            .expect("withdraw");
    }
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_factum"))
            .args(["--pg", &url, "--schema", &schema])
            .args(args)
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let history = run(&["history", "account", "acc-ada"]);
    assert_eq!(history.lines().count(), 4, "{history}");
    assert!(
        history
            .lines()
            .nth(3)
            .is_some_and(|l| l.contains("account.withdrawn")),
        "{history}"
    );
    let state: Value = serde_json::from_str(&run(&[
        "state",
        "account",
        "acc-ada",
        "--at-time",
        "2030-01-01T10:30:00Z",
        "--json",
    ]))
    .expect("JSON");
    assert_eq!(
        (state["version"].clone(), state["state"]["balance"].clone()),
        (2.into(), 10000.into())
    );
    let blame: Value =
        serde_json::from_str(&run(&["blame", "account", "acc-ada", "balance", "--json"])).expect("JSON");
    assert_eq!(blame["current"], 6000);
}

/// A consumer of deposits that refuses Grace's: its dead letters are what
/// the consumer commands show.
struct Ledger {
    refuse: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[consumer(name = "ledger", max_attempts = 2, backoff_ms = 1)]
impl Ledger {
    #[on]
    async fn deposited(&self, _e: &factum_examples::bank::Deposited, ctx: &mut ConsumerContext) -> Handled {
        if ctx.stream_id() == "acc-grace" && self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
            return Handled::Retry("the ledger service refused acc-grace".into());
        }
        Handled::Done
    }
}

#[tokio::test]
async fn consumer_commands_list_redrive_and_discard_dead_letters() {
    let bank = bank().await;
    let refuse = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    {
        let app = App::open(&bank.db).await.expect("open");
        // Grace's second deposit is held behind the first.
        app.entity::<Account>("acc-grace")
            .send(Deposit { amount: dollars(5) })
            .await
            .expect("deposit");
        let ledger = app
            .consumers()
            .start(Ledger {
                refuse: refuse.clone(),
            })
            .await
            .expect("start");
        ledger.wait_idle().await.expect("idle");
    }
    let listed = factum(&bank.db, &["consumers"]);
    assert!(listed.contains("ledger"), "{listed}");
    let letters = json(&bank.db, &["dead-letters", "ledger"]);
    let letters = letters.as_array().expect("an array");
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(letters[0]["state"], "parked");
    assert_eq!(letters[0]["stream_id"], "acc-grace");
    assert_eq!(letters[0]["attempts"], 2);
    assert_eq!(letters[0]["error"], "the ledger service refused acc-grace");
    assert_eq!(letters[1]["state"], "held");
    let parked = letters[0]["position"].as_u64().expect("a position").to_string();

    let (ok, _, err) = factum_status(&bank.db, &["discard", "ledger", &parked, "--reason", " "]);
    assert!(!ok && err.contains("needs a reason"), "{err}");
    let (ok, _, err) = factum_status(&bank.db, &["redrive", "ledger", "1"]);
    assert!(!ok && err.contains("no dead letter at position 1"), "{err}");
    let text = factum(&bank.db, &["redrive", "ledger", &parked]);
    assert!(text.contains("run 1 parked event(s) again"), "{text}");
    assert_eq!(
        json(&bank.db, &["dead-letters", "ledger", "--state", "redrive"])
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // The app runs again, with the ledger service fixed: the redriven event and the held one run.
    refuse.store(false, std::sync::atomic::Ordering::SeqCst);
    let app = App::open(&bank.db).await.expect("open");
    let ledger = app.consumers().start(Ledger { refuse }).await.expect("start");
    ledger.wait_idle().await.expect("idle");
    drop((ledger, app));
    let resolved = json(&bank.db, &["dead-letters", "ledger", "--state", "resolved"]);
    assert_eq!(resolved.as_array().map(Vec::len), Some(2), "{resolved}");
    let (ok, _, err) = factum_status(&bank.db, &["dead-letters", "ledger", "--state", "lost"]);
    assert!(!ok && err.contains("expected one of parked"), "{err}");
}
