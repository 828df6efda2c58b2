//! Workflows end to end, on memory and on SQLite, on virtual time: the
//! transfer example's paths (happy, compensated, retried then failed over,
//! held then accepted, held then timed out and refunded), a step timeout,
//! signals and starts refused with typed errors, listing by status and cancel,
//! the derived command ids of a step's entity calls, cancel with a
//! compensation, and the workflow-wide timeout.

use std::time::Duration;

use factum::prelude::*;
use factum::testkit::VirtualTime;
use factum::workflow::{Status, StatusKind, WorkflowEvent, WorkflowRejection};
use factum_examples::transfer::{
    Accept, Credit, Decline, Freeze, LIMIT, Outcome, StartTransfer, Transfer, TransferError, Wallet,
    WalletEvent,
};
use serde::{Deserialize, Serialize};

/// An app on virtual time, over memory or a SQLite file.
struct World {
    app: App,
    time: VirtualTime,
    _dir: Option<tempfile::TempDir>,
}

impl World {
    fn memory() -> World {
        let time = VirtualTime::at(Timestamp::parse("2030-01-01T00:00:00Z").expect("a time"));
        let app = App::builder().clock(time.clock()).build();
        World {
            app,
            time,
            _dir: None,
        }
    }

    fn sqlite() -> World {
        let time = VirtualTime::at(Timestamp::parse("2030-01-01T00:00:00Z").expect("a time"));
        let dir = tempfile::tempdir().expect("tempdir");
        let app = App::builder()
            .clock(time.clock())
            .sqlite(dir.path().join("workflows.db"))
            .expect("open SQLite")
            .build();
        World {
            app,
            time,
            _dir: Some(dir),
        }
    }

    async fn fund(&self, wallet: &str, amount: u64) {
        self.app
            .entity::<Wallet>(wallet)
            .send(Credit {
                amount,
                reference: "opening balance".into(),
            })
            .await
            .expect("fund a wallet");
    }

    async fn balance(&self, wallet: &str) -> u64 {
        self.app
            .entity::<Wallet>(wallet)
            .state()
            .await
            .expect("a wallet")
            .balance
    }

    /// The wallet's events, as `+amount` / `-amount` / `frozen`.
    async fn movements(&self, wallet: &str) -> Vec<String> {
        let history = self
            .app
            .entity::<Wallet>(wallet)
            .history()
            .await
            .expect("a history");
        history
            .into_iter()
            .map(|r| match r.event {
                WalletEvent::Credited(e) => format!("+{}", e.amount),
                WalletEvent::Debited(e) => format!("-{}", e.amount),
                WalletEvent::Frozen(_) => "frozen".to_owned(),
            })
            .collect()
    }

    async fn transfer(&self, id: &str, from: &str, to: &str, amount: u64) -> factum::WorkflowRef<Transfer> {
        let transfer = self.app.workflow::<Transfer>(id);
        transfer
            .start(StartTransfer {
                from: from.into(),
                to: to.into(),
                amount,
            })
            .await
            .expect("start a transfer");
        transfer
    }

    async fn settle(&self, instance: &factum::WorkflowRef<Transfer>) -> Status {
        self.time
            .settle(self.app.timers(), instance)
            .await
            .expect("settle")
    }
}

/// Runs each scenario on both backends.
macro_rules! on_memory_and_sqlite {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn memory() {
                    super::$scenario(super::World::memory()).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$scenario(super::World::sqlite()).await
                }
            }
        )*
    };
}

on_memory_and_sqlite!(
    a_transfer_withdraws_then_deposits_then_ends,
    a_failing_deposit_is_compensated_by_a_refund,
    a_step_retried_after_a_failure_succeeds_and_one_failing_every_time_fails_over,
    a_held_transfer_waits_for_accept,
    a_held_transfer_nobody_accepts_times_out_and_is_refunded,
    a_step_that_hangs_times_out_and_fails_over,
    refused_starts_and_signals_are_typed_errors,
    instances_are_listed_by_status_and_can_be_cancelled,
    a_steps_entity_calls_carry_ids_derived_from_the_step_not_the_attempt,
    a_step_retried_after_its_call_went_through_has_the_calls_effect_once,
    a_held_transfer_cancelled_after_its_withdrawal_is_refunded_once,
    a_cancel_during_a_step_lets_it_finish_then_compensates,
    a_cancel_after_the_deposit_leaves_the_transfer_done,
    a_workflow_timeout_in_a_retry_waits_for_the_step_then_enters_the_final_step,
    a_workflow_timeout_without_a_final_step_fails_a_paused_instance,
);

async fn a_transfer_withdraws_then_deposits_then_ends(w: World) {
    w.fund("ada", 10_000).await;
    let t = w.transfer("t-1", "ada", "bob", 2_500).await;
    assert_eq!(w.settle(&t).await, Status::Ended);
    assert_eq!(t.trail().await.unwrap(), ["withdraw", "deposit"]);
    assert_eq!(t.state().await.unwrap().unwrap().outcome, Outcome::Completed);
    assert_eq!((w.balance("ada").await, w.balance("bob").await), (7_500, 2_500));
    let names: Vec<&str> = t
        .history()
        .await
        .unwrap()
        .iter()
        .map(|r| r.event.name())
        .collect();
    assert_eq!(
        names,
        [
            "factum.workflow.started",
            "factum.workflow.step_entered",
            "factum.workflow.step_succeeded",
            "factum.workflow.step_entered",
            "factum.workflow.step_succeeded",
            "factum.workflow.state_updated",
            "factum.workflow.ended",
        ]
    );
}

async fn a_failing_deposit_is_compensated_by_a_refund(w: World) {
    w.fund("ada", 10_000).await;
    w.app.entity::<Wallet>("ice").send(Freeze).await.unwrap();
    let t = w.transfer("t-2", "ada", "ice", 4_000).await;
    assert_eq!(w.settle(&t).await, Status::Ended);
    assert_eq!(
        t.trail().await.unwrap(),
        [
            "withdraw",
            "deposit failed",
            "deposit failed",
            "deposit failed",
            "refund"
        ],
        "deposit has max_retries = 2, then fails over to refund"
    );
    assert_eq!(t.state().await.unwrap().unwrap().outcome, Outcome::Refunded);
    assert_eq!(w.movements("ada").await, ["+10000", "-4000", "+4000"]);
    assert_eq!(w.movements("ice").await, ["frozen"]);
    let steps = t.steps().await.unwrap();
    assert!(
        steps[1].error.as_deref().unwrap().contains("frozen"),
        "the attempt records why: {:?}",
        steps[1]
    );
}

async fn a_step_retried_after_a_failure_succeeds_and_one_failing_every_time_fails_over(w: World) {
    w.fund("ada", 10_000).await;
    w.app.workflows().fail_step_of("t-once", Transfer::deposit, 1);
    for attempt in 1..=3 {
        w.app
            .workflows()
            .fail_step_of("t-always", Transfer::deposit, attempt);
    }
    let once = w.transfer("t-once", "ada", "bob", 1_000).await;
    assert_eq!(w.settle(&once).await, Status::Ended);
    assert_eq!(
        once.trail().await.unwrap(),
        ["withdraw", "deposit failed", "deposit"]
    );
    let retry = &once.steps().await.unwrap()[1];
    assert_eq!((retry.attempt, retry.timed_out), (1, false));

    let always = w.transfer("t-always", "ada", "bob", 1_000).await;
    assert_eq!(w.settle(&always).await, Status::Ended);
    assert_eq!(
        always.trail().await.unwrap(),
        [
            "withdraw",
            "deposit failed",
            "deposit failed",
            "deposit failed",
            "refund"
        ]
    );
    assert_eq!((w.balance("ada").await, w.balance("bob").await), (9_000, 1_000));
}

async fn a_held_transfer_waits_for_accept(w: World) {
    w.fund("ada", 1_000_000).await;
    let t = w.transfer("t-big", "ada", "bob", LIMIT + 1).await;
    let paused = t.wait_settled().await.unwrap();
    assert!(
        matches!(
            paused,
            Status::Paused {
                timeout_at: Some(_),
                ..
            }
        ),
        "{paused:?}"
    );
    assert_eq!(t.state().await.unwrap().unwrap().outcome, Outcome::Held);
    assert_eq!(w.balance("ada").await, 1_000_000 - LIMIT - 1, "the money is held");
    t.signal(Accept).await.unwrap();
    assert_eq!(w.settle(&t).await, Status::Ended);
    assert_eq!(
        t.trail().await.unwrap(),
        ["withdraw", "paused", "signal Accept", "deposit"]
    );
    assert_eq!(w.balance("bob").await, LIMIT + 1);
    // The pause's timer, now late, changes nothing.
    w.time
        .advance(w.app.timers(), Duration::from_secs(7_200))
        .await
        .unwrap();
    assert_eq!(t.wait_settled().await.unwrap(), Status::Ended);
    assert_eq!(t.trail().await.unwrap().len(), 4);
}

async fn a_held_transfer_nobody_accepts_times_out_and_is_refunded(w: World) {
    w.fund("ada", 1_000_000).await;
    let t = w.transfer("t-big", "ada", "bob", LIMIT + 5).await;
    t.wait_settled().await.unwrap();
    w.time
        .advance(w.app.timers(), Duration::from_secs(3_599))
        .await
        .unwrap();
    assert!(
        matches!(t.wait_settled().await.unwrap(), Status::Paused { .. }),
        "one second before the hour it still waits"
    );
    assert_eq!(w.settle(&t).await, Status::Ended);
    assert_eq!(
        t.trail().await.unwrap(),
        ["withdraw", "paused", "pause timed out", "refund"]
    );
    assert_eq!(
        w.movements("ada").await,
        ["+1000000", &format!("-{}", LIMIT + 5), &format!("+{}", LIMIT + 5)]
    );
    assert!(w.movements("bob").await.is_empty());
    // A signal after the end is refused, typed.
    let late = t.signal(Decline).await.unwrap_err();
    assert!(matches!(
        late.rejection(),
        Some(WorkflowRejection::NotAccepting {
            status: Status::Ended,
            signal: "Decline",
            ..
        })
    ));
}

/// A workflow whose first step never finishes on its own.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    gave_up: bool,
}

/// Start a probe.
#[derive(Clone, Debug)]
pub struct Go;

#[workflow(name = "probe")]
impl Probe {
    #[start]
    fn start(&self, _cmd: Go) -> Then<Self> {
        Then::to(Self::hang, ())
    }

    #[step(timeout = "5s", max_retries = 1, failover = give_up)]
    async fn hang(&self, _ctx: &StepContext) -> Then<Self> {
        std::future::pending::<()>().await;
        Then::end()
    }

    #[step]
    async fn give_up(&self, _ctx: &StepContext) -> Then<Self> {
        Then::end().with_state(Probe { gave_up: true })
    }
}

/// Waits until the step's timeout timer is stored (the attempt has started).
async fn timeout_armed(w: &World, id: &str) {
    let name = format!("workflow:probe:{id}:timeout");
    for _ in 0..500 {
        if w.app
            .timers()
            .pending()
            .await
            .unwrap()
            .iter()
            .any(|t| t.name == name)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the timeout of {id} was never armed");
}

async fn a_step_that_hangs_times_out_and_fails_over(w: World) {
    let p = w.app.workflow::<Probe>("p-1");
    p.start(Go).await.unwrap();
    timeout_armed(&w, "p-1").await;
    w.time
        .advance(w.app.timers(), Duration::from_secs(4))
        .await
        .unwrap();
    assert!(matches!(
        p.status().await.unwrap(),
        Status::Running { attempt: 1, .. }
    ));
    w.time
        .advance(w.app.timers(), Duration::from_secs(1))
        .await
        .unwrap();
    // The retry (attempt 2) hangs too; its own timeout ends it.
    p.wait_until(|s| matches!(s, Status::Running { attempt: 2, .. }))
        .await
        .unwrap();
    timeout_armed(&w, "p-1").await;
    w.time
        .advance(w.app.timers(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(p.wait_for_end().await.unwrap(), Status::Ended);
    assert_eq!(
        p.trail().await.unwrap(),
        ["hang timed out", "hang timed out", "give_up"]
    );
    assert_eq!(p.state().await.unwrap(), Some(Probe { gave_up: true }));
}

async fn refused_starts_and_signals_are_typed_errors(w: World) {
    let empty = w.app.workflow::<Transfer>("t-0");
    let refused = empty
        .start(StartTransfer {
            from: "ada".into(),
            to: "bob".into(),
            amount: 0,
        })
        .await
        .unwrap_err();
    assert!(matches!(
        refused.rejection(),
        Some(WorkflowRejection::Refused(TransferError::Empty))
    ));
    assert_eq!(
        empty.status().await.unwrap(),
        Status::NotStarted,
        "a refusal stores nothing"
    );
    let early = empty.signal(Accept).await.unwrap_err();
    assert!(matches!(
        early.rejection(),
        Some(WorkflowRejection::NotAccepting {
            status: Status::NotStarted,
            ..
        })
    ));

    w.fund("ada", 100).await;
    let t = w.transfer("t-1", "ada", "bob", 50).await;
    let again = t
        .start(StartTransfer {
            from: "ada".into(),
            to: "bob".into(),
            amount: 50,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(again.rejection(), Some(WorkflowRejection::AlreadyStarted { .. })),
        "{again}"
    );
    assert_eq!(w.settle(&t).await, Status::Ended);
    assert_eq!(w.balance("bob").await, 50);
}

async fn instances_are_listed_by_status_and_can_be_cancelled(w: World) {
    w.fund("ada", 1_000_000).await;
    let small = w.transfer("t-small", "ada", "bob", 10).await;
    let big = w.transfer("t-big", "ada", "bob", LIMIT + 1).await;
    w.settle(&small).await;
    big.wait_settled().await.unwrap();
    let paused = w.app.workflows().list(Some(StatusKind::Paused)).await.unwrap();
    assert_eq!(
        paused.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["t-big"]
    );
    let ended = w.app.workflows().list(Some(StatusKind::Ended)).await.unwrap();
    assert_eq!(
        ended
            .iter()
            .map(|i| (i.workflow, i.id.as_str()))
            .collect::<Vec<_>>(),
        [("transfer", "t-small")]
    );

    big.cancel("the customer called").await.unwrap();
    assert_eq!(
        big.wait_for_end().await.unwrap(),
        Status::Cancelled {
            reason: "the customer called".into()
        }
    );
    let again = big.cancel("twice").await.unwrap_err();
    assert!(matches!(
        again.rejection(),
        Some(WorkflowRejection::Finished { .. })
    ));
    assert!(
        w.app
            .workflows()
            .list(Some(StatusKind::Paused))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(w.app.workflows().list(None).await.unwrap().len(), 2);
    // The cancelled pause's timer, fired late, changes nothing.
    w.time
        .advance(w.app.timers(), Duration::from_secs(7_200))
        .await
        .unwrap();
    assert!(matches!(big.status().await.unwrap(), Status::Cancelled { .. }));
}

async fn a_steps_entity_calls_carry_ids_derived_from_the_step_not_the_attempt(w: World) {
    w.fund("ada", 1_000).await;
    // The withdrawal's first attempt is failed before it runs; the second sends the debit.
    w.app.workflows().fail_step_of("t-ids", Transfer::withdraw, 1);
    let t = w.transfer("t-ids", "ada", "bob", 300).await;
    assert_eq!(w.settle(&t).await, Status::Ended);
    assert_eq!(
        t.trail().await.unwrap(),
        ["withdraw failed", "withdraw", "deposit"]
    );
    let debit = w.app.entity::<Wallet>("ada").history().await.unwrap().remove(1);
    assert_eq!(
        debit.metadata.command_id,
        factum::ids::workflow_command_id("transfer", "t-ids", "withdraw", 1, 0)
    );
    let credit = w.app.entity::<Wallet>("bob").history().await.unwrap().remove(0);
    assert_eq!(
        credit.metadata.command_id,
        factum::ids::workflow_command_id("transfer", "t-ids", "deposit", 2, 0)
    );
    let history = t.history().await.unwrap();
    assert!(
        history
            .iter()
            .any(|r| matches!(&r.event, WorkflowEvent::StepAttemptFailed(e) if e.attempt == 1))
    );
    assert_eq!(w.movements("ada").await, ["+1000", "-300"]);
}

/// A payment whose step loses the answer of its first debit.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    wallet: String,
}

/// Start a payment of 100 from a wallet.
#[derive(Clone, Debug)]
pub struct Pay {
    wallet: String,
}

#[workflow(name = "payment")]
impl Payment {
    #[start]
    fn start(&self, cmd: Pay) -> Then<Self> {
        Then::to(Self::charge, ()).with_state(Payment { wallet: cmd.wallet })
    }

    #[step(max_retries = 2)]
    async fn charge(&self, ctx: &StepContext) -> Result<Then<Self>, String> {
        let debit = factum_examples::transfer::Debit {
            amount: 100,
            reference: "payment".into(),
        };
        ctx.send::<Wallet>(&self.wallet, debit)
            .await
            .map_err(|e| e.to_string())?;
        if ctx.attempt() == 1 {
            return Err("the connection dropped after the debit was sent".into());
        }
        Ok(Then::end())
    }
}

async fn a_step_retried_after_its_call_went_through_has_the_calls_effect_once(w: World) {
    w.fund("ada", 1_000).await;
    let p = w.app.workflow::<Payment>("pay-1");
    p.start(Pay { wallet: "ada".into() }).await.unwrap();
    assert_eq!(w.time.settle(w.app.timers(), &p).await.unwrap(), Status::Ended);
    assert_eq!(p.trail().await.unwrap(), ["charge failed", "charge"]);
    assert_eq!(
        w.movements("ada").await,
        ["+1000", "-100"],
        "the second attempt's debit was the first's"
    );
}

async fn a_held_transfer_cancelled_after_its_withdrawal_is_refunded_once(w: World) {
    w.fund("ada", 1_000_000).await;
    let t = w.transfer("t-held", "ada", "bob", LIMIT + 7).await;
    assert!(matches!(t.wait_settled().await.unwrap(), Status::Paused { .. }));
    t.cancel("the customer called").await.unwrap();
    assert_eq!(
        w.settle(&t).await,
        Status::Cancelled {
            reason: "the customer called".into()
        }
    );
    assert_eq!(
        t.trail().await.unwrap(),
        ["withdraw", "paused", "cancel requested", "refund", "cancelled"]
    );
    assert_eq!(t.state().await.unwrap().unwrap().outcome, Outcome::Refunded);
    let amount = format!("{}", LIMIT + 7);
    assert_eq!(
        w.movements("ada").await,
        ["+1000000", &format!("-{amount}"), &format!("+{amount}")],
        "one withdrawal, one refund"
    );
    assert!(w.movements("bob").await.is_empty());
    // The pause's timer, fired late, and a second cancel change nothing.
    w.time
        .advance(w.app.timers(), Duration::from_secs(7_200))
        .await
        .unwrap();
    let again = t.cancel("twice").await.unwrap_err();
    assert!(
        matches!(again.rejection(), Some(WorkflowRejection::Finished { .. })),
        "{again}"
    );
    assert_eq!(w.movements("ada").await.len(), 3);
}

async fn a_cancel_during_a_step_lets_it_finish_then_compensates(w: World) {
    w.fund("ada", 1_000).await;
    // The withdrawal's first attempt fails; the instance waits a second for its retry.
    w.app.workflows().fail_step_of("t-mid", Transfer::withdraw, 1);
    let t = w.transfer("t-mid", "ada", "bob", 300).await;
    let waiting = t.wait_settled().await.unwrap();
    assert!(
        matches!(
            waiting,
            Status::Running {
                retry_at: Some(_),
                ..
            }
        ),
        "{waiting:?}"
    );
    t.cancel("changed my mind").await.unwrap();
    assert_eq!(
        t.status().await.unwrap(),
        waiting,
        "the step in flight is not cut off"
    );
    let twice = t.cancel("again").await.unwrap_err();
    assert!(
        matches!(twice.rejection(), Some(WorkflowRejection::Closing { .. })),
        "{twice}"
    );
    assert_eq!(
        w.settle(&t).await,
        Status::Cancelled {
            reason: "changed my mind".into()
        }
    );
    assert_eq!(
        t.trail().await.unwrap(),
        [
            "withdraw failed",
            "cancel requested",
            "withdraw",
            "refund",
            "cancelled"
        ],
        "the retried withdrawal finished, then the refund ran instead of the deposit"
    );
    assert_eq!(w.movements("ada").await, ["+1000", "-300", "+300"]);
    assert!(w.movements("bob").await.is_empty());
}

async fn a_cancel_after_the_deposit_leaves_the_transfer_done(w: World) {
    w.fund("ada", 1_000).await;
    // The deposit's first attempt fails: the cancel comes while it waits for its retry.
    w.app.workflows().fail_step_of("t-late", Transfer::deposit, 1);
    let t = w.transfer("t-late", "ada", "bob", 300).await;
    assert!(matches!(
        t.wait_settled().await.unwrap(),
        Status::Running {
            retry_at: Some(_),
            ..
        }
    ));
    t.cancel("too late").await.unwrap();
    assert_eq!(w.settle(&t).await, Status::Ended, "the deposit's own end stands");
    assert_eq!(
        t.trail().await.unwrap(),
        ["withdraw", "deposit failed", "cancel requested", "deposit"]
    );
    assert_eq!((w.balance("ada").await, w.balance("bob").await), (700, 300));
}

/// A job with a ten-second budget whose work retries after a minute.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    wrapped_up: bool,
}

/// Start a job.
#[derive(Clone, Debug)]
pub struct Run;

#[workflow(name = "job", timeout = "10s", on_timeout = Self::wrap_up)]
impl Job {
    #[start]
    fn start(&self, _cmd: Run) -> Then<Self> {
        Then::to(Self::work, ())
    }

    #[step(max_retries = 1, backoff = "1m")]
    async fn work(&self, _ctx: &StepContext) -> Then<Self> {
        Then::to(Self::more_work, ())
    }

    #[step]
    async fn more_work(&self, _ctx: &StepContext) -> Then<Self> {
        Then::end()
    }

    #[step]
    async fn wrap_up(&self, _ctx: &StepContext) -> Then<Self> {
        Then::end().with_state(Job { wrapped_up: true })
    }
}

async fn a_workflow_timeout_in_a_retry_waits_for_the_step_then_enters_the_final_step(w: World) {
    w.app.workflows().fail_step(Job::work, 1);
    let job = w.app.workflow::<Job>("j-1");
    job.start(Run).await.unwrap();
    let started = w.time.now();
    assert_eq!(
        job.deadline().await.unwrap(),
        Some(started + Duration::from_secs(10))
    );
    assert_eq!(w.time.settle(w.app.timers(), &job).await.unwrap(), Status::Ended);
    assert_eq!(
        job.trail().await.unwrap(),
        ["work failed", "timed out", "work", "wrap_up"],
        "the retry a minute later still ran; its move was replaced by the final step"
    );
    assert_eq!(job.state().await.unwrap(), Some(Job { wrapped_up: true }));
    assert_eq!(job.deadline().await.unwrap(), None, "the deadline passed");
    let timed_out = job
        .history()
        .await
        .unwrap()
        .into_iter()
        .find_map(|r| match r.event {
            WorkflowEvent::WorkflowTimedOut(e) => Some(e.due),
            _ => None,
        });
    assert_eq!(timed_out, Some(started + Duration::from_secs(10)));
}

/// A wait with a one-minute budget and no final step.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Wait;

/// Start waiting.
#[derive(Clone, Debug)]
pub struct Begin;

/// The answer.
#[derive(Clone, Debug)]
pub struct Answer;

#[workflow(name = "wait", timeout = "1m")]
impl Wait {
    #[start]
    fn start(&self, _cmd: Begin) -> Then<Self> {
        Then::pause()
    }

    #[signal]
    fn answer(&self, _cmd: Answer) -> Then<Self> {
        Then::to(Self::done, ())
    }

    #[step]
    async fn done(&self, _ctx: &StepContext) -> Then<Self> {
        Then::end()
    }
}

async fn a_workflow_timeout_without_a_final_step_fails_a_paused_instance(w: World) {
    let answered = w.app.workflow::<Wait>("w-answered");
    answered.start(Begin).await.unwrap();
    let forgotten = w.app.workflow::<Wait>("w-forgotten");
    forgotten.start(Begin).await.unwrap();
    answered.signal(Answer).await.unwrap();
    assert_eq!(
        w.time.settle(w.app.timers(), &answered).await.unwrap(),
        Status::Ended
    );
    w.time
        .advance(w.app.timers(), Duration::from_secs(59))
        .await
        .unwrap();
    assert!(matches!(
        forgotten.wait_settled().await.unwrap(),
        Status::Paused { .. }
    ));
    let failed = w.time.settle(w.app.timers(), &forgotten).await.unwrap();
    let Status::Failed { reason } = &failed else {
        panic!("{failed:?}");
    };
    assert!(reason.contains("timeout of 60s passed"), "{reason}");
    assert_eq!(forgotten.trail().await.unwrap(), ["paused", "timed out"]);
    let late = forgotten.signal(Answer).await.unwrap_err();
    assert!(matches!(
        late.rejection(),
        Some(WorkflowRejection::NotAccepting { .. })
    ));
    // The answered one's deadline, fired late, changed nothing.
    assert_eq!(answered.status().await.unwrap(), Status::Ended);
}
