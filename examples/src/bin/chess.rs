//! The chess flagship: an event-sourced chess service with a web page, on a
//! SQLite file. `--demo` plays the Opera Game (Morphy, Paris 1858) through the
//! HTTP API, prints the moves, the match's audit trail and the views, and exits.
//!
//! `cargo run -p factum-examples --bin chess [-- --addr 127.0.0.1:8080] [--db chess.db] [--clock-minutes 5] [--demo]`
//!
//! With `FACTUM_NATS_URL` set, match events are also published to the
//! JetStream stream `CHESS` for spectators (subjects `match.<event>.<match id>`).

use std::process::ExitCode;
use std::time::Duration;

use factum_examples::chess::feed;
use factum_examples::chess::games::OPERA_GAME;
use factum_examples::chess::http::router;
use factum_examples::chess::service::{Chess, Settings};
use serde_json::{Value, json};

struct Args {
    addr: Option<String>,
    db: String,
    clock_minutes: u64,
    demo: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: None,
        db: "chess.db".to_owned(),
        clock_minutes: 5,
        demo: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--addr" => args.addr = Some(value("--addr")?),
            "--db" => args.db = value("--db")?,
            "--clock-minutes" => {
                let text = value("--clock-minutes")?;
                args.clock_minutes = text.parse().ok().filter(|m| *m > 0).ok_or_else(|| {
                    format!("--clock-minutes takes a whole number of minutes above 0, not `{text}`")
                })?;
            }
            "--demo" => args.demo = true,
            "--help" | "-h" => {
                return Err(
                    "usage: chess [--addr HOST:PORT] [--db FILE] [--clock-minutes N] [--demo]".to_owned(),
                );
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chess: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let app = Chess::builder().sqlite(&args.db)?.build();
    let head = app.store().head().await?;
    let settings = Settings {
        clock: Duration::from_secs(args.clock_minutes * 60),
        ..Settings::default()
    };
    let chess = Chess::start(app, settings).await?;
    let feed = feed::start_if_configured(chess.app()).await?;
    let addr = args.addr.unwrap_or_else(|| {
        if args.demo {
            "127.0.0.1:0"
        } else {
            "127.0.0.1:8080"
        }
        .to_owned()
    });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let url = format!("http://{}", listener.local_addr()?);
    println!("factum chess on {url} ({head} events already in {})", args.db);
    if let Some(feed) = &feed {
        println!(
            "publishing match events to JetStream stream {} at {}",
            feed::STREAM,
            feed.url()
        );
    }
    let server = axum::serve(listener, router(chess.clone()));
    if !args.demo {
        println!("open {url} in a browser; Ctrl-C stops");
        server
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        return Ok(());
    }
    let serving = tokio::spawn(async move { server.await });
    let outcome = demo(&url).await;
    chess.settle().await?;
    if let Some(feed) = feed {
        feed.flush(chess.app()).await?;
    }
    serving.abort();
    outcome
}

/// Plays the Opera Game through the API and prints what a person would look at.
async fn demo(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let request = http.post(format!("{url}{path}")).json(&body);
        async move { answer(request.send().await?).await }
    };
    let get = |path: &str| {
        let request = http.get(format!("{url}{path}"));
        async move { answer(request.send().await?).await }
    };
    let morphy = post("/players", json!({ "name": "Paul Morphy" })).await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let duke = post("/players", json!({ "name": "Duke Karl" })).await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let code = post("/lobby", json!({ "player": morphy })).await?["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    println!("\nMorphy ({morphy}) opened lobby {code}; the Duke ({duke}) joins");
    let game = post(&format!("/lobby/{code}/join"), json!({ "player": duke })).await?["match"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    println!("match {game}: Morphy white, the Duke black\n");
    let refused = http
        .post(format!("{url}/matches/{game}/moves"))
        .json(&json!({ "player": duke, "uci": "e7e5" }))
        .send()
        .await?;
    println!(
        "the Duke tries to move first: {} {}",
        refused.status(),
        refused.text().await?
    );
    let mut last = Value::Null;
    for (i, uci) in OPERA_GAME.iter().enumerate() {
        let player = if i % 2 == 0 { &morphy } else { &duke };
        last = post(
            &format!("/matches/{game}/moves"),
            json!({ "player": player, "uci": uci }),
        )
        .await?;
        let san = last["san"][i].as_str().unwrap_or("?");
        if i % 2 == 0 {
            print!("{:>3}. {san:<8}", i / 2 + 1);
        } else {
            println!("{san}");
        }
    }
    println!(
        "\n\nresult {} by {}; final position {}",
        last["result"], last["reason"], last["fen"]
    );

    println!("\naudit trail of match {game} (GET /matches/{game}/history):");
    println!(
        "  {:>3}  {:>4}  {:<20}  {:<27}  {:<8}  {:<8}  data",
        "v", "pos", "event", "recorded at", "command", "cause"
    );
    let history = get(&format!("/matches/{game}/history")).await?;
    for entry in history.as_array().into_iter().flatten() {
        let short = |v: &Value| v.as_str().map_or("-".to_owned(), |s| s.chars().take(8).collect());
        println!(
            "  {:>3}  {:>4}  {:<20}  {:<27}  {:<8}  {:<8}  {}",
            entry["version"],
            entry["position"],
            entry["event"].as_str().unwrap_or_default(),
            entry["recorded_at"].as_str().unwrap_or_default(),
            short(&entry["command_id"]),
            short(&entry["causation_id"]),
            entry["data"]
        );
    }
    println!(
        "\nGET /matches/{game}: {}",
        get(&format!("/matches/{game}")).await?
    );
    println!(
        "GET /players/{morphy}/archive (match_archive view): {}",
        get(&format!("/players/{morphy}/archive")).await?
    );
    println!("GET /players/{duke}: {}", get(&format!("/players/{duke}")).await?);
    println!("GET /leaderboard (leaderboard view):");
    for row in get("/leaderboard").await?.as_array().into_iter().flatten() {
        println!(
            "  {:<14} {:>4} points  {}W {}L {}D",
            row["name"].as_str().unwrap_or_default(),
            row["points"],
            row["wins"],
            row["losses"],
            row["draws"]
        );
    }
    Ok(())
}

/// The JSON of a 2xx answer; an error naming the status and message otherwise.
async fn answer(response: reqwest::Response) -> Result<Value, Box<dyn std::error::Error>> {
    let status = response.status();
    let body: Value = response.json().await?;
    if !status.is_success() {
        return Err(format!("{status}: {}", body["error"]).into());
    }
    Ok(body)
}
