//! Load on the chess service through its HTTP API: `--matches N` matches
//! played at once, each by its own two players (register, lobby, join, then
//! the 33 half-moves of the Opera Game, one request per move). Prints moves
//! per second and the latency of a move request (p50, p99, max), then checks
//! that every match ended 1-0 and every player was scored once.
//!
//! `cargo run --release -p factum-examples --bin chess_load -- [--matches 50] [--store sqlite|memory]`

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use factum_examples::chess::games::OPERA_GAME;
use factum_examples::chess::http::router;
use factum_examples::chess::service::{Chess, Settings};
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut matches = 50usize;
    let mut store = "sqlite".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--matches" => {
                matches = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--matches takes a number")?
            }
            "--store" => store = args.next().ok_or("--store takes sqlite or memory")?,
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    let dir = tempfile_dir()?;
    let builder = match store.as_str() {
        "memory" => Chess::builder(),
        "sqlite" => Chess::builder().sqlite(dir.join("chess.db"))?,
        other => return Err(format!("--store is sqlite or memory, not `{other}`").into()),
    };
    let chess = Chess::start(builder.build(), Settings::default()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(axum::serve(listener, router(chess.clone())).into_future());
    let http = reqwest::Client::new();

    let started = Instant::now();
    let games: Vec<_> = (0..matches)
        .map(|n| tokio::spawn(play(http.clone(), url.clone(), n)))
        .collect();
    let mut latencies = Vec::new();
    let mut ids = Vec::new();
    for game in games {
        let (id, white, black, mut times) = game.await??;
        latencies.append(&mut times);
        ids.push((id, white, black));
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1e3
    };
    println!(
        "chess_load store={store} matches={matches} moves={} secs={secs:.2} moves_per_sec={:.0} p50_ms={:.1} p99_ms={:.1} max_ms={:.1}",
        latencies.len(),
        latencies.len() as f64 / secs,
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    // Every match ended 1-0 and scored each player once (once scoring caught up).
    chess.settle().await?;
    for (id, white, black) in &ids {
        let m: Value = http
            .get(format!("{url}/matches/{id}"))
            .send()
            .await?
            .json()
            .await?;
        let w: Value = http
            .get(format!("{url}/players/{white}"))
            .send()
            .await?
            .json()
            .await?;
        let b: Value = http
            .get(format!("{url}/players/{black}/archive"))
            .send()
            .await?
            .json()
            .await?;
        if m["result"] != "1-0" || w["wins"] != 1 || b.as_array().map(Vec::len) != Some(1) {
            return Err(format!(
                "match {id} came out {}, white {w}, black's archive {b}",
                m["result"]
            )
            .into());
        }
    }
    let board: Value = http
        .get(format!("{url}/leaderboard"))
        .send()
        .await?
        .json()
        .await?;
    let scored: f64 = board
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["wins"].as_f64())
        .sum();
    if scored as usize != matches {
        return Err(format!("{scored} wins on the leaderboard for {matches} matches").into());
    }
    println!(
        "checked: {matches} matches 1-0, each player in the archive once, {scored} wins on the leaderboard"
    );
    Ok(())
}

/// One match: two players, the lobby, the Opera Game. Returns the match, the
/// players and each move request's latency.
async fn play(
    http: reqwest::Client,
    url: String,
    n: usize,
) -> Result<(String, String, String, Vec<Duration>), Error> {
    let post = |path: String, body: Value| {
        let request = http.post(format!("{url}{path}")).json(&body);
        async move {
            let response = request.send().await?;
            let status = response.status();
            let value: Value = response.json().await?;
            if !status.is_success() {
                return Err::<Value, Error>(format!("{path}: {status} {value}").into());
            }
            Ok(value)
        }
    };
    let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_owned();
    let white = text(
        &post("/players".into(), json!({ "name": format!("white {n}") })).await?,
        "id",
    );
    let black = text(
        &post("/players".into(), json!({ "name": format!("black {n}") })).await?,
        "id",
    );
    let code = text(&post("/lobby".into(), json!({ "player": white })).await?, "code");
    let id = text(
        &post(format!("/lobby/{code}/join"), json!({ "player": black })).await?,
        "match",
    );
    let mut times = Vec::with_capacity(OPERA_GAME.len());
    for (i, uci) in OPERA_GAME.iter().enumerate() {
        let player = if i % 2 == 0 { &white } else { &black };
        let at = Instant::now();
        post(
            format!("/matches/{id}/moves"),
            json!({ "player": player, "uci": uci }),
        )
        .await?;
        times.push(at.elapsed());
    }
    Ok((id, white, black, times))
}

/// A fresh directory for the SQLite file (left in the system's temp dir, named by pid).
fn tempfile_dir() -> Result<std::path::PathBuf, Error> {
    let dir = std::env::temp_dir().join(format!("chess_load_{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
