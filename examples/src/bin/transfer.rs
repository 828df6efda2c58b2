//! Transfers between wallets as workflows, scripted: a plain one, one whose
//! deposit keeps failing and is compensated, a large one that is accepted,
//! and a large one nobody accepts, which times out and is refunded. Prints
//! each transfer's steps and both wallets' audit trails.
//!
//! Runs on a SQLite file (the embedded default). The clock is virtual here
//! (a `ManualClock` started at the wall time), so the backoffs and the
//! hour-long hold pass at once; each run uses new ids, so runs add up.
//!
//! `cargo run -p factum-examples --bin transfer [-- path/to/transfer.db]`

use factum::prelude::*;
use factum::testkit::VirtualTime;
use factum::workflow::Status;
use factum_examples::transfer::{
    Accept, Credit, Freeze, LIMIT, Outcome, StartTransfer, Transfer, Wallet, WalletEvent,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "transfer.db".to_owned());
    let time = VirtualTime::at(Timestamp::wall_clock());
    let app = App::builder().clock(time.clock()).sqlite(&path)?.build();
    let run = app.store().head().await?;
    println!("factum transfers on {path} (run {run}: {run} events already in the log)\n");

    let ada = format!("ada-{run}");
    let bob = format!("bob-{run}");
    let frozen = format!("frozen-{run}");
    for (wallet, amount) in [(&ada, 500_000), (&bob, 1_000)] {
        app.entity::<Wallet>(wallet)
            .send(Credit {
                amount,
                reference: "opening balance".into(),
            })
            .await?;
    }
    app.entity::<Wallet>(&frozen).send(Freeze).await?;

    let scenarios: [(&str, &str, u64, Option<Accept>); 4] = [
        ("plain", &bob, 2_500, None),
        ("to a frozen wallet: compensated", &frozen, 4_000, None),
        ("large, accepted", &bob, LIMIT + 1, Some(Accept)),
        ("large, never accepted: times out", &bob, LIMIT + 2, None),
    ];
    for (i, (what, to, amount, accept)) in scenarios.into_iter().enumerate() {
        let id = format!("t{}-{run}", i + 1);
        let transfer = app.workflow::<Transfer>(&id);
        transfer
            .start(StartTransfer {
                from: ada.clone(),
                to: to.to_owned(),
                amount,
            })
            .await?;
        // Run it to its end on virtual time, but stop at a hold to accept it.
        if let (Status::Paused { .. }, Some(accept)) = (transfer.wait_settled().await?, accept) {
            transfer.signal(accept).await?;
        }
        let status = time.settle(app.timers(), &transfer).await?;
        let state = transfer.state().await?.unwrap_or_default();
        println!("transfer {id} ({what}): {amount} cents {ada} → {to}");
        println!("  steps:   {}", transfer.trail().await?.join(" → "));
        println!("  status:  {status}; outcome {:?}", state.outcome);
        assert_ne!(state.outcome, Outcome::Pending, "every scenario settles");
        println!();
    }

    for wallet in [&ada, &bob, &frozen] {
        let account = app.entity::<Wallet>(wallet);
        println!(
            "wallet {wallet}: balance {} cents",
            account.state().await?.balance
        );
        for r in account.history().await? {
            let line = match &r.event {
                WalletEvent::Credited(e) => format!("+{:>7}  {}", e.amount, e.reference),
                WalletEvent::Debited(e) => format!("-{:>7}  {}", e.amount, e.reference),
                WalletEvent::Frozen(_) => "frozen".to_owned(),
            };
            println!("  v{:<2} {line}", r.version);
        }
        println!();
    }
    Ok(())
}
