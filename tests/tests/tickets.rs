//! The tickets example on memory and on SQLite, on virtual time: a seat held
//! and paid in time is sold; a hold nobody pays for is released when the
//! purchase's timeout passes (and not a second before); two buyers for one
//! seat, one wins; a released seat goes to the next buyer; a payment after the
//! expiry is refused.

use std::time::Duration;

use factum::prelude::*;
use factum::testkit::VirtualTime;
use factum::workflow::{Status, WorkflowRejection};
use factum_examples::tickets::{Buy, HOLD_FOR, Pay, Purchase, PurchaseOutcome, Seat, SeatEvent};

struct World {
    app: App,
    time: VirtualTime,
    _dir: Option<tempfile::TempDir>,
}

impl World {
    fn memory() -> World {
        let time = VirtualTime::at(Timestamp::parse("2030-01-01T20:00:00Z").expect("a time"));
        let app = App::builder().clock(time.clock()).build();
        World {
            app,
            time,
            _dir: None,
        }
    }

    fn sqlite() -> World {
        let time = VirtualTime::at(Timestamp::parse("2030-01-01T20:00:00Z").expect("a time"));
        let dir = tempfile::tempdir().expect("tempdir");
        let app = App::builder()
            .clock(time.clock())
            .sqlite(dir.path().join("tickets.db"))
            .expect("open SQLite")
            .build();
        World {
            app,
            time,
            _dir: Some(dir),
        }
    }

    async fn buy(&self, id: &str, seat: &str, buyer: &str) -> factum::WorkflowRef<Purchase> {
        let purchase = self.app.workflow::<Purchase>(id);
        purchase
            .start(Buy {
                seat: seat.into(),
                buyer: buyer.into(),
            })
            .await
            .expect("start a purchase");
        purchase
    }

    async fn pay(&self, purchase: &factum::WorkflowRef<Purchase>) {
        purchase
            .signal(Pay {
                reference: format!("card for {}", purchase.id()),
            })
            .await
            .expect("pay");
    }

    async fn outcome(&self, purchase: &factum::WorkflowRef<Purchase>) -> PurchaseOutcome {
        purchase.state().await.unwrap().unwrap().outcome
    }

    /// The seat's events, as `held ada` / `sold ada` / `released ada`.
    async fn seat(&self, seat: &str) -> Vec<String> {
        let history = self.app.entity::<Seat>(seat).history().await.expect("a history");
        history
            .into_iter()
            .map(|r| match r.event {
                SeatEvent::SeatHeld(e) => format!("held {}", e.buyer),
                SeatEvent::SeatSold(e) => format!("sold {}", e.buyer),
                SeatEvent::SeatReleased(e) => format!("released {}", e.buyer),
            })
            .collect()
    }
}

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
    a_seat_held_and_paid_in_time_is_sold,
    a_hold_nobody_pays_for_is_released_when_it_expires,
    of_two_buyers_for_one_seat_one_wins,
    a_released_seat_goes_to_the_next_buyer,
);

async fn a_seat_held_and_paid_in_time_is_sold(w: World) {
    let p = w.buy("p-1", "A1", "ada").await;
    assert!(matches!(p.wait_settled().await.unwrap(), Status::Paused { .. }));
    assert_eq!(w.outcome(&p).await, PurchaseOutcome::Held);
    w.time
        .advance(w.app.timers(), HOLD_FOR - Duration::from_secs(1))
        .await
        .unwrap();
    w.pay(&p).await;
    assert_eq!(w.time.settle(w.app.timers(), &p).await.unwrap(), Status::Ended);
    assert_eq!(
        p.trail().await.unwrap(),
        ["hold", "paused", "signal Pay", "confirm"]
    );
    assert_eq!(w.outcome(&p).await, PurchaseOutcome::Confirmed);
    assert_eq!(w.seat("A1").await, ["held ada", "sold ada"]);
    // The hold's expiry, fired after the sale, changes nothing.
    w.time
        .advance(w.app.timers(), Duration::from_secs(3_600))
        .await
        .unwrap();
    assert_eq!(p.status().await.unwrap(), Status::Ended);
    assert_eq!(w.seat("A1").await, ["held ada", "sold ada"]);
}

async fn a_hold_nobody_pays_for_is_released_when_it_expires(w: World) {
    let p = w.buy("p-1", "A1", "ada").await;
    p.wait_settled().await.unwrap();
    w.time
        .advance(w.app.timers(), HOLD_FOR - Duration::from_secs(1))
        .await
        .unwrap();
    assert!(
        matches!(p.wait_settled().await.unwrap(), Status::Paused { .. }),
        "a second before the expiry the seat is still held"
    );
    assert_eq!(w.time.settle(w.app.timers(), &p).await.unwrap(), Status::Ended);
    assert_eq!(
        p.trail().await.unwrap(),
        ["hold", "paused", "timed out", "release"]
    );
    assert_eq!(w.outcome(&p).await, PurchaseOutcome::Released);
    assert_eq!(w.seat("A1").await, ["held ada", "released ada"]);
    let late = p
        .signal(Pay {
            reference: "too late".into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            late.rejection(),
            Some(WorkflowRejection::NotAccepting {
                status: Status::Ended,
                signal: "Pay",
                ..
            })
        ),
        "{late}"
    );
    assert_eq!(w.seat("A1").await.len(), 2, "the late payment sold nothing");
}

async fn of_two_buyers_for_one_seat_one_wins(w: World) {
    let (ada, bob) = tokio::join!(w.buy("p-ada", "A1", "ada"), w.buy("p-bob", "A1", "bob"));
    let (a, b) = tokio::join!(ada.wait_settled(), bob.wait_settled());
    let statuses = [a.unwrap(), b.unwrap()];
    let (winner, loser) = match statuses {
        [Status::Paused { .. }, Status::Failed { .. }] => (&ada, &bob),
        [Status::Failed { .. }, Status::Paused { .. }] => (&bob, &ada),
        other => panic!("one buyer holds the seat and the other fails: {other:?}"),
    };
    let Status::Failed { reason } = loser.status().await.unwrap() else {
        unreachable!("matched above")
    };
    assert!(reason.contains("seat A1 is taken by"), "{reason}");
    assert_eq!(w.outcome(loser).await, PurchaseOutcome::Lost);
    // The loser's payment is refused: it holds nothing.
    let refused = loser
        .signal(Pay {
            reference: "x".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(
        refused.rejection(),
        Some(WorkflowRejection::NotAccepting { .. })
    ));
    w.pay(winner).await;
    assert_eq!(
        w.time.settle(w.app.timers(), winner).await.unwrap(),
        Status::Ended
    );
    assert_eq!(w.outcome(winner).await, PurchaseOutcome::Confirmed);
    let buyer = winner.state().await.unwrap().unwrap().buyer;
    assert_eq!(
        w.seat("A1").await,
        [format!("held {buyer}"), format!("sold {buyer}")]
    );
    assert_eq!(
        w.app.entity::<Seat>("A1").state().await.unwrap().sold_to,
        Some(buyer)
    );
}

async fn a_released_seat_goes_to_the_next_buyer(w: World) {
    let ada = w.buy("p-ada", "A1", "ada").await;
    ada.wait_settled().await.unwrap();
    let early = w.buy("p-bob-early", "A1", "bob").await;
    assert!(matches!(
        early.wait_settled().await.unwrap(),
        Status::Failed { .. }
    ));
    assert_eq!(w.time.settle(w.app.timers(), &ada).await.unwrap(), Status::Ended);
    assert_eq!(w.outcome(&ada).await, PurchaseOutcome::Released);
    let bob = w.buy("p-bob", "A1", "bob").await;
    assert!(matches!(bob.wait_settled().await.unwrap(), Status::Paused { .. }));
    w.pay(&bob).await;
    assert_eq!(w.time.settle(w.app.timers(), &bob).await.unwrap(), Status::Ended);
    assert_eq!(
        w.seat("A1").await,
        ["held ada", "released ada", "held bob", "sold bob"]
    );
}
