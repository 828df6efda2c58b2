//! Load for workflows: starts many transfers at once on one store and runs
//! them to their end, then reports steps per second and the step latency —
//! from a step's entry to its recorded success, as the instances' own events
//! time it (`recorded_at`, the wall clock).
//!
//! `cargo run --release -p factum-examples --bin workflow_load -- [--store sqlite|memory] [--transfers N] [--per-payer N]`

use std::time::Instant;

use factum::prelude::*;
use factum::workflow::{Status, WorkflowEvent};
use factum_examples::transfer::{Credit, StartTransfer, Transfer, Wallet};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut store = "sqlite".to_owned();
    let mut transfers: usize = 10_000;
    let mut per_payer: usize = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--store" => store = args.next().ok_or("--store needs a value")?,
            "--transfers" => transfers = args.next().ok_or("--transfers needs a value")?.parse()?,
            "--per-payer" => {
                per_payer = args
                    .next()
                    .ok_or("--per-payer needs a value")?
                    .parse::<usize>()?
                    .max(1)
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let dir = std::env::temp_dir().join(format!("factum-workflow-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let app = match store.as_str() {
        "memory" => App::in_memory(),
        "sqlite" => App::open(dir.join("load.db")).await?,
        other => return Err(format!("unknown store {other}: memory or sqlite").into()),
    };
    // One paying wallet per `per_payer` transfers (default: each its own);
    // the transfers of one payer queue on its wallet, one command at a time.
    let payers = transfers.div_ceil(per_payer);
    for p in 0..payers {
        app.entity::<Wallet>(format!("payer-{p}"))
            .send(Credit {
                amount: 1_000_000_000,
                reference: "opening balance".into(),
            })
            .await?;
    }
    let began = Instant::now();
    let mut handles = Vec::with_capacity(transfers);
    for i in 0..transfers {
        let app = app.clone();
        handles.push(tokio::spawn(async move {
            let t = app.workflow::<Transfer>(format!("load-{i}"));
            t.start(StartTransfer {
                from: format!("payer-{}", i % payers),
                to: format!("payee-{i}"),
                amount: 10,
            })
            .await
            .map_err(|e| e.to_string())?;
            t.wait_for_end().await.map_err(|e| e.to_string())
        }));
    }
    let mut ended = 0;
    for h in handles {
        if h.await?? == Status::Ended {
            ended += 1;
        }
    }
    let secs = began.elapsed().as_secs_f64();
    let mut latencies = Vec::with_capacity(transfers * 2);
    for i in 0..transfers {
        let mut entered = None;
        for r in app.workflow::<Transfer>(format!("load-{i}")).history().await? {
            match r.event {
                WorkflowEvent::StepEntered(_) => entered = Some(r.metadata.recorded_at),
                WorkflowEvent::StepSucceeded(_) => {
                    if let Some(at) = entered.take() {
                        latencies.push(r.metadata.recorded_at.since(at).as_micros() as f64);
                    }
                }
                _ => {}
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    let steps = latencies.len();
    println!(
        "workflow_load store={store} transfers={transfers} per_payer={per_payer} ended={ended} steps={steps} secs={secs:.2} steps_per_sec={:.0} transfers_per_sec={:.0} p50_step_ms={:.1} p99_step_ms={:.1}",
        steps as f64 / secs,
        transfers as f64 / secs,
        pct(0.50) / 1000.0,
        pct(0.99) / 1000.0,
    );
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
    if ended != transfers {
        return Err(format!("{} of {transfers} transfers did not end", transfers - ended).into());
    }
    Ok(())
}
