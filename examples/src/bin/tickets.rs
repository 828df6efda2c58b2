//! Ticket holding, scripted: two buyers for one seat (one wins and pays),
//! and a hold nobody pays for, which expires after 15 minutes and lets the
//! next buyer have the seat. Prints each purchase's steps and the seats'
//! histories.
//!
//! Runs on a SQLite file (the embedded default). The clock is virtual (a
//! `ManualClock` started at the wall time), so the quarter of an hour passes
//! at once; each run uses new ids, so runs add up.
//!
//! `cargo run -p factum-examples --bin tickets [-- path/to/tickets.db]`

use factum::prelude::*;
use factum::testkit::VirtualTime;
use factum_examples::tickets::{Buy, HOLD_FOR, Pay, Purchase, PurchaseOutcome, Seat, SeatEvent};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "tickets.db".to_owned());
    let time = VirtualTime::at(Timestamp::wall_clock());
    let app = App::builder().clock(time.clock()).sqlite(&path)?.build();
    let run = app.store().head().await?;
    println!("factum tickets on {path} (run {run}: {run} events already in the log)\n");

    let front_row = format!("A1-{run}");
    let back_row = format!("Z9-{run}");
    let buy = |id: &str, seat: &str, buyer: &str| {
        let purchase = app.workflow::<Purchase>(format!("{id}-{run}"));
        let command = Buy {
            seat: seat.to_owned(),
            buyer: buyer.to_owned(),
        };
        async move {
            purchase.start(command).await?;
            Ok::<_, Box<dyn std::error::Error>>(purchase)
        }
    };

    // Two buyers for the front-row seat at the same moment: one holds it.
    let (ada, bob) = tokio::join!(buy("p1", &front_row, "ada"), buy("p2", &front_row, "bob"));
    let (ada, bob) = (ada?, bob?);
    for purchase in [&ada, &bob] {
        purchase.wait_settled().await?;
    }
    for purchase in [&ada, &bob] {
        if purchase.state().await?.map(|s| s.outcome) == Some(PurchaseOutcome::Held) {
            purchase
                .signal(Pay {
                    reference: format!("card-{}", purchase.id()),
                })
                .await?;
        }
        time.settle(app.timers(), purchase).await?;
    }

    // Cy holds the back-row seat and never pays: after 15 minutes it is released.
    let cy = buy("p3", &back_row, "cy").await?;
    cy.wait_settled().await?;
    time.settle(app.timers(), &cy).await?;
    let dan = buy("p4", &back_row, "dan").await?;
    dan.wait_settled().await?;
    dan.signal(Pay {
        reference: "cash".into(),
    })
    .await?;
    time.settle(app.timers(), &dan).await?;

    for (what, purchase) in [
        ("front row, racing bob", &ada),
        ("front row, racing ada", &bob),
        ("back row, never paid", &cy),
        ("back row, after the release", &dan),
    ] {
        let state = purchase.state().await?.unwrap_or_default();
        println!(
            "purchase {} ({what}): seat {} for {}",
            purchase.id(),
            state.seat,
            state.buyer
        );
        println!("  steps:   {}", purchase.trail().await?.join(" → "));
        println!(
            "  status:  {}; outcome {:?}",
            purchase.status().await?,
            state.outcome
        );
        println!();
    }
    println!("holds last {} minutes\n", HOLD_FOR.as_secs() / 60);
    for seat in [&front_row, &back_row] {
        let entity = app.entity::<Seat>(seat);
        let state = entity.state().await?;
        println!(
            "seat {seat}: sold to {}",
            state.sold_to.as_deref().unwrap_or("nobody")
        );
        for r in entity.history().await? {
            let line = match &r.event {
                SeatEvent::SeatHeld(e) => format!("held for {}", e.buyer),
                SeatEvent::SeatSold(e) => format!("sold to {}", e.buyer),
                SeatEvent::SeatReleased(e) => format!("released by {}", e.buyer),
            };
            println!("  v{:<2} {}  {line}", r.version, r.metadata.recorded_at);
        }
        println!();
    }
    Ok(())
}
