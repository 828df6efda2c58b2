//! The whole-app simulation on the transfer example: wallets, transfers,
//! accepts, declines and cancels on a seeded schedule, with crashes,
//! duplicate deliveries and step failures, under many seeds; no transfer
//! withdraws twice, money is conserved, every transfer ends.
//!
//! And a planted bug the simulation catches: a transfer whose withdrawal goes
//! through the app under a fresh command id instead of the step's derived
//! one, so a step re-run after a crash (or a duplicate delivery) withdraws
//! again. The simulation reports the violated invariant with a seed, and
//! that seed alone replays it, with the same fault trace.

use std::collections::BTreeMap;
use std::sync::PoisonError;

use factum::prelude::*;
use factum::testkit::{Check, Problem, Simulation, Turn, simulate};
use factum::workflow::Status;
use factum_examples::transfer::{
    Accept, Credit, Decline, LIMIT, Outcome, StartTransfer, Transfer, Wallet, WalletEvent,
};

const WALLETS: [&str; 4] = ["ada", "bob", "cy", "dee"];
/// What each wallet is opened with, in cents: enough for a few transfers,
/// too little for all, so some are refused for insufficient funds.
const OPENING: u64 = 300_000;

/// Funds every wallet.
async fn open_wallets(app: App) -> Check {
    for wallet in WALLETS {
        app.entity::<Wallet>(wallet)
            .send(Credit {
                amount: OPENING,
                reference: "opening".to_owned(),
            })
            .await?;
    }
    Ok(())
}

/// Starts a transfer between two wallets; a fifth of them above the limit
/// (held for an accept). A refused start is the domain's answer, not a failure.
async fn start_transfer(mut turn: Turn) -> Check {
    let from = *turn.pick(&WALLETS).ok_or("no wallets")?;
    let to = *turn.pick(&WALLETS).ok_or("no wallets")?;
    let amount = if turn.chance(0.2) {
        LIMIT + 1 + turn.below(LIMIT)
    } else {
        1 + turn.below(LIMIT)
    };
    let id = format!("t{}", turn.number());
    let _ = turn
        .start::<Transfer>(
            &id,
            StartTransfer {
                from: from.to_owned(),
                to: to.to_owned(),
                amount,
            },
        )
        .await;
    Ok(())
}

/// The held transfers, by id.
async fn held(app: &App) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    let paused = app
        .workflows()
        .list(Some(factum::workflow::StatusKind::Paused))
        .await?;
    Ok(paused.into_iter().map(|i| i.id).collect())
}

/// Accepts or declines one held transfer (nothing when none is held).
async fn answer_held(mut turn: Turn) -> Check {
    let held = held(turn.app()).await?;
    let Some(id) = turn.pick(&held).cloned() else {
        return Ok(());
    };
    // The instance may have moved on (its pause timed out): a refusal is fine.
    if turn.chance(0.7) {
        let _ = turn.signal::<Transfer>(&id, Accept).await;
    } else {
        let _ = turn.signal::<Transfer>(&id, Decline).await;
    }
    Ok(())
}

/// Cancels one transfer that is not over.
async fn cancel_one(mut turn: Turn) -> Check {
    let open: Vec<String> = turn
        .app()
        .workflows()
        .list(None)
        .await?
        .into_iter()
        .filter(|i| !i.status.is_final())
        .map(|i| i.id)
        .collect();
    if let Some(id) = turn.pick(&open).cloned() {
        let _ = turn
            .app()
            .workflow::<Transfer>(&id)
            .cancel("the customer called")
            .await;
    }
    Ok(())
}

/// Per transfer: how many debits, deposits and refunds the wallets' streams hold.
#[derive(Default, Debug)]
struct Moves {
    debits: u32,
    deposits: u32,
    refunds: u32,
}

async fn moves(
    app: &App,
) -> Result<(BTreeMap<String, Moves>, u64), Box<dyn std::error::Error + Send + Sync>> {
    let mut by_transfer: BTreeMap<String, Moves> = BTreeMap::new();
    let mut total = 0;
    for wallet in WALLETS {
        total += app.entity::<Wallet>(wallet).state().await?.balance;
        for recorded in app.entity::<Wallet>(wallet).history().await? {
            match recorded.event {
                WalletEvent::Debited(e) => {
                    let id = e.reference.trim_start_matches("transfer ").to_owned();
                    by_transfer.entry(id).or_default().debits += 1;
                }
                WalletEvent::Credited(e) if e.reference.starts_with("refund of transfer ") => {
                    let id = e.reference.trim_start_matches("refund of transfer ").to_owned();
                    by_transfer.entry(id).or_default().refunds += 1;
                }
                WalletEvent::Credited(e) if e.reference.starts_with("transfer ") => {
                    let id = e.reference.trim_start_matches("transfer ").to_owned();
                    by_transfer.entry(id).or_default().deposits += 1;
                }
                _ => {}
            }
        }
    }
    Ok((by_transfer, total))
}

/// No transfer withdraws, deposits or refunds more than once.
async fn no_double_moves(app: App) -> Check {
    let (by_transfer, _) = moves(&app).await?;
    for (id, m) in &by_transfer {
        if m.debits > 1 || m.deposits > 1 || m.refunds > 1 {
            return Err(format!("transfer {id} moved money more than once: {m:?}").into());
        }
    }
    Ok(())
}

/// The money in the wallets plus what transfers hold in flight is what was
/// put in; a transfer holds at most its amount, and nothing once it is over.
async fn money_is_conserved(app: App) -> Check {
    let (by_transfer, total) = moves(&app).await?;
    let mut in_flight = 0;
    for (id, m) in &by_transfer {
        let held = i64::from(m.debits) - i64::from(m.deposits) - i64::from(m.refunds);
        let transfer = app.workflow::<Transfer>(id);
        let amount = transfer.state().await?.map_or(0, |t| t.amount);
        let over = transfer.status().await?.is_final();
        if !(0..=1).contains(&held) || (over && held != 0) {
            return Err(format!(
                "transfer {id} ({}) holds {held} times its {amount} cents: {m:?}",
                transfer.status().await?
            )
            .into());
        }
        in_flight += held as u64 * amount;
    }
    let opened = OPENING * WALLETS.len() as u64;
    if total + in_flight != opened {
        return Err(format!("{total} in the wallets and {in_flight} in flight, of {opened} put in").into());
    }
    Ok(())
}

/// Every transfer is over, and came out as one of the ways a transfer ends.
async fn every_transfer_ends(app: App) -> Check {
    for info in app.workflows().list(None).await? {
        let transfer = app.workflow::<Transfer>(&info.id);
        let outcome = transfer.state().await?.map(|t| t.outcome);
        let fine = matches!(
            (&info.status, &outcome),
            (Status::Ended, Some(Outcome::Completed | Outcome::Refunded))
                | (Status::Cancelled { .. }, Some(Outcome::Refunded))
                | (Status::Failed { .. }, Some(Outcome::Insufficient))
        );
        if !fine {
            return Err(format!(
                "transfer {} ended {} with outcome {outcome:?}",
                info.id, info.status
            )
            .into());
        }
    }
    Ok(())
}

fn transfers() -> Simulation {
    simulate()
        .operations(12)
        .time_step(std::time::Duration::from_secs(20 * 60))
        .crash_probability(0.05)
        .duplicate_probability(0.1)
        .failure_probability(0.05)
        .setup(open_wallets)
        .operation("start a transfer", start_transfer)
        .operation("start a transfer", start_transfer)
        .operation("answer a held transfer", answer_held)
        .operation("cancel a transfer", cancel_one)
        .invariant("no transfer moves money twice", no_double_moves)
        .invariant("money is conserved", money_is_conserved)
        .at_end("every transfer ends", every_transfer_ends)
}

#[tokio::test]
async fn transfers_survive_crashes_duplicates_and_failures_under_many_seeds() {
    let report = transfers()
        .seed(1)
        .runs(200)
        .run()
        .await
        .unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(report.runs, 200);
    // The faults did happen, many times over.
    assert!(report.crashes >= 100, "{report:?}");
    assert!(report.duplicates >= 100, "{report:?}");
    assert!(report.failures >= 50, "{report:?}");
}

/// The planted bug: a transfer that withdraws through a wallet handle of its
/// own, whose `send` draws a fresh command id each time, instead of through
/// `ctx.send` (the step's derived id). Each re-run of the step withdraws again.
mod careless {
    use std::sync::{Mutex, PoisonError};

    use factum::prelude::*;
    use factum_examples::transfer::{Credit, Debit, StartTransfer, Wallet};
    use serde::{Deserialize, Serialize};

    /// The wallet handles of the app now open (set by the simulation's `on_open`).
    pub static WALLETS: Mutex<Vec<(String, EntityRef<Wallet>)>> = Mutex::new(Vec::new());

    pub fn wallet(id: &str) -> Option<EntityRef<Wallet>> {
        let wallets = WALLETS.lock().unwrap_or_else(PoisonError::into_inner);
        wallets.iter().find(|(w, _)| w == id).map(|(_, r)| r.clone())
    }

    #[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CarelessTransfer {
        pub from: String,
        pub to: String,
        pub amount: u64,
    }

    #[workflow(name = "careless_transfer")]
    impl CarelessTransfer {
        #[start]
        fn start(&self, cmd: StartTransfer) -> Then<Self> {
            let state = CarelessTransfer {
                from: cmd.from,
                to: cmd.to,
                amount: cmd.amount,
            };
            Then::to(Self::withdraw, ()).with_state(state)
        }

        #[step(max_retries = 5)]
        async fn withdraw(&self, ctx: &StepContext) -> Result<Then<Self>, String> {
            let wallet = wallet(&self.from).ok_or("no wallet handle")?;
            let debit = Debit {
                amount: self.amount,
                reference: format!("transfer {}", ctx.workflow_id()),
            };
            // THE BUG: a plain `send` carries a fresh random command id.
            wallet.send(debit).await.map_err(|e| e.to_string())?;
            Ok(Then::to(Self::deposit, ()))
        }

        #[step(max_retries = 5)]
        async fn deposit(
            &self,
            ctx: &StepContext,
        ) -> Result<Then<Self>, CommandError<factum_examples::transfer::WalletError>> {
            let credit = Credit {
                amount: self.amount,
                reference: format!("transfer {}", ctx.workflow_id()),
            };
            ctx.send::<Wallet>(&self.to, credit).await?;
            Ok(Then::end())
        }
    }
}

/// Careless transfers under crashes alone: no duplicate, no failure, so a
/// double withdrawal is a step re-run after a crash.
fn careless_transfers() -> Simulation {
    simulate()
        .operations(12)
        .crash_probability(0.05)
        .on_open(|app| {
            let handles = WALLETS
                .iter()
                .map(|w| (w.to_string(), app.entity::<Wallet>(w)))
                .collect();
            *careless::WALLETS.lock().unwrap_or_else(PoisonError::into_inner) = handles;
        })
        .setup(open_wallets)
        .operation("start a careless transfer", |mut turn: Turn| async move {
            let from = *turn.pick(&WALLETS).ok_or("no wallets")?;
            let to = *turn.pick(&WALLETS).ok_or("no wallets")?;
            let amount = 1 + turn.below(1_000);
            let id = format!("c{}", turn.number());
            let _ = turn
                .start::<careless::CarelessTransfer>(
                    &id,
                    StartTransfer {
                        from: from.to_owned(),
                        to: to.to_owned(),
                        amount,
                    },
                )
                .await;
            Ok(())
        })
        .invariant("no transfer moves money twice", no_double_moves)
}

#[tokio::test]
async fn the_simulation_catches_a_step_that_withdraws_under_a_fresh_command_id() {
    let failure = careless_transfers()
        .seed(1)
        .runs(200)
        .run()
        .await
        .expect_err("the careless transfer withdraws twice under some seed");
    match &failure.problem {
        Problem::Violated { name, message, .. } => {
            assert_eq!(*name, "no transfer moves money twice");
            assert!(message.contains("debits: 2"), "{message}");
        }
        other => panic!("the violation is reported, not {other:?}\n{failure}"),
    }
    let report = failure.to_string();
    assert!(report.contains(&format!("seed {}", failure.seed)), "{report}");
    assert!(
        report.contains(&format!(".seed({}).runs(1)", failure.seed)),
        "{report}"
    );
    assert!(
        failure.trace.iter().any(|l| l.starts_with("crash")
            && l.contains("step `withdraw`")
            && l.contains("after its effects")),
        "the trace shows the crash that re-ran the withdrawal: {report}"
    );

    // The seed alone replays it: the same violation after the same schedule and faults.
    let replay = careless_transfers()
        .seed(failure.seed)
        .runs(1)
        .run()
        .await
        .expect_err("the replay fails too");
    assert_eq!(replay.seed, failure.seed);
    assert_eq!(replay.problem, failure.problem);
    assert_eq!(replay.trace, failure.trace);
}
