//! The bank workload both sides run: open M accounts, then N tokio tasks send
//! deposits and withdrawals to random accounts for S seconds. Shared by the
//! peer binary and by the postgres-es child (`postgres-es/`), which includes
//! this file by path.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The account id of the `i`-th account.
pub fn account_id(i: usize) -> String {
    format!("acc-{i:06}")
}

/// What a command came to.
pub enum Outcome {
    Accepted,
    Rejected,
    Failed(String),
}

/// One framework's bank: the three commands the workload sends.
pub trait Bank: Send + Sync + 'static {
    fn open(&self, account: usize) -> impl Future<Output = Outcome> + Send;
    fn deposit(&self, account: usize, amount: u64) -> impl Future<Output = Outcome> + Send;
    fn withdraw(&self, account: usize, amount: u64) -> impl Future<Output = Outcome> + Send;
}

/// splitmix64: the workload's choices, one generator per writer (as loadgen).
pub struct Rng(u64);

impl Rng {
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((u128::from(z) * u128::from(bound)) >> 64) as u64
    }
}

#[derive(Default, Debug)]
pub struct Tally {
    pub commands: u64,
    pub rejected: u64,
    pub failed: u64,
    pub first_failure: Option<String>,
    pub secs: f64,
    /// What each account's balance must be after the run: its accepted
    /// deposits less its accepted withdrawals (the check a peer's store is
    /// held to). Empty in a tally read back from a child's result line.
    pub balances: Vec<i64>,
}

impl Tally {
    pub fn per_sec(&self) -> f64 {
        self.commands as f64 / self.secs
    }
}

/// Opens every account, then runs the writers for `seconds`.
pub async fn workload<B: Bank>(
    bank: Arc<B>,
    entities: usize,
    writers: usize,
    seconds: f64,
) -> Result<Tally, String> {
    for i in 0..entities {
        match bank.open(i).await {
            Outcome::Accepted => {}
            Outcome::Rejected => return Err(format!("{} was already open", account_id(i))),
            Outcome::Failed(e) => return Err(format!("opening {}: {e}", account_id(i))),
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let writers: Vec<_> = (0..writers)
        .map(|w| {
            let (bank, stop, entities) = (bank.clone(), stop.clone(), entities as u64);
            tokio::spawn(async move {
                let mut rng = Rng(0x5EED_0000 + w as u64);
                let mut tally = Tally {
                    balances: vec![0; entities as usize],
                    ..Tally::default()
                };
                while !stop.load(Ordering::Relaxed) {
                    let i = rng.below(entities) as usize;
                    let (outcome, change) = if rng.below(2) == 0 {
                        let amount = 1 + rng.below(1_000);
                        (bank.deposit(i, amount).await, amount as i64)
                    } else {
                        let amount = 1 + rng.below(1_500);
                        (bank.withdraw(i, amount).await, -(amount as i64))
                    };
                    tally.commands += 1;
                    match outcome {
                        Outcome::Accepted => tally.balances[i] += change,
                        Outcome::Rejected => tally.rejected += 1,
                        Outcome::Failed(e) => {
                            tally.failed += 1;
                            tally.first_failure.get_or_insert(e);
                        }
                    }
                }
                tally
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = Tally {
        balances: vec![0; entities],
        ..Tally::default()
    };
    for writer in writers {
        let tally = writer.await.map_err(|e| format!("a writer task failed: {e}"))?;
        for (sum, change) in total.balances.iter_mut().zip(&tally.balances) {
            *sum += change;
        }
        total.commands += tally.commands;
        total.rejected += tally.rejected;
        total.failed += tally.failed;
        total.first_failure = total.first_failure.or(tally.first_failure);
    }
    total.secs = start.elapsed().as_secs_f64();
    Ok(total)
}
