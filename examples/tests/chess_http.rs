//! The chess service over HTTP: a game through the API as the issue lists
//! it, live updates over server-sent events, every bad input (status code,
//! message naming what was wrong, nothing stored), and a flag that falls
//! while the service is down, after its restart, with the right winner.

use std::time::Duration;

use factum::prelude::*;
use factum_examples::chess::http::router;
use factum_examples::chess::service::{Chess, Settings};
use serde_json::{Value, json};

const SCHOLARS_MATE: [&str; 7] = ["e2e4", "e7e5", "f1c4", "b8c6", "d1h5", "g8f6", "h5f7"];

struct Server {
    chess: Chess,
    url: String,
    http: reqwest::Client,
}

async fn serve(chess: Chess) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = router(chess.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        chess,
        url,
        http: reqwest::Client::new(),
    }
}

async fn server() -> Server {
    let chess = Chess::start(Chess::builder().build(), Settings::default())
        .await
        .expect("starts");
    serve(chess).await
}

impl Server {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let request = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url),
        };
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        let response = request.send().await.expect("answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    async fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, value) = self.call(method, path, Some(body)).await;
        assert!((200..300).contains(&status), "{method} {path}: {status} {value}");
        value
    }

    async fn get(&self, path: &str) -> Value {
        let (status, value) = self.call("GET", path, None).await;
        assert_eq!(status, 200, "GET {path}: {value}");
        value
    }

    async fn raw(&self, path: &str, content_type: Option<&str>, body: &'static str) -> (u16, Value) {
        let mut request = self.http.post(format!("{}{path}", self.url)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    async fn head(&self) -> u64 {
        self.chess.app().store().head().await.expect("head")
    }

    /// Two players paired through the lobby over HTTP: (white, black, match).
    async fn paired(&self) -> (String, String, String) {
        let white = self.ok("POST", "/players", json!({ "name": "Ada" })).await["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let black = self.ok("POST", "/players", json!({ "name": "Bob" })).await["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let code = self.ok("POST", "/lobby", json!({ "player": white })).await["code"]
            .as_str()
            .expect("code")
            .to_owned();
        let id = self
            .ok("POST", &format!("/lobby/{code}/join"), json!({ "player": black }))
            .await["match"]
            .as_str()
            .expect("match")
            .to_owned();
        (white, black, id)
    }
}

#[tokio::test]
async fn a_game_through_the_api_shows_in_the_match_the_archive_and_the_leaderboard() {
    let s = server().await;
    let (white, black, id) = s.paired().await;
    let m = s.get(&format!("/matches/{id}")).await;
    assert_eq!(
        (m["white"].as_str(), m["black"].as_str()),
        (Some(white.as_str()), Some(black.as_str()))
    );
    assert_eq!(
        (m["turn"].as_str(), m["status"].as_str(), &m["result"]),
        (Some("white"), Some("playing"), &Value::Null)
    );
    for (i, uci) in SCHOLARS_MATE.iter().enumerate() {
        let player = if i % 2 == 0 { &white } else { &black };
        s.ok(
            "POST",
            &format!("/matches/{id}/moves"),
            json!({ "player": player, "uci": uci }),
        )
        .await;
    }
    let m = s.get(&format!("/matches/{id}")).await;
    assert_eq!(
        (m["status"].as_str(), m["result"].as_str(), m["turn"].as_str()),
        (Some("finished"), Some("1-0"), None)
    );
    assert_eq!(m["moves"], json!(SCHOLARS_MATE));
    assert_eq!(
        m["fen"],
        "r1bqkb1r/pppp1Qpp/2n2n2/4p3/2B1P3/8/PPPP1PPP/RNB1K1NR b KQkq - 0 4"
    );
    let history = s.get(&format!("/matches/{id}/history")).await;
    let events: Vec<&str> = history
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert_eq!(events.first(), Some(&"match.started"));
    assert_eq!(events.last(), Some(&"match.game_finished"));
    assert_eq!(events.len(), 2 + SCHOLARS_MATE.len());
    assert_ne!(
        history[0]["correlation_id"], history[0]["command_id"],
        "the start is part of the pairing's transaction: {}",
        history[0]
    );
    assert_eq!(history[1]["data"]["player"], json!(white), "who moved");
    let archive = s.get(&format!("/players/{black}/archive")).await;
    assert_eq!(
        (archive[0]["id"].as_str(), archive[0]["result"].as_str()),
        (Some(id.as_str()), Some("1-0"))
    );
    let p = s.get(&format!("/players/{white}")).await;
    assert_eq!(
        (p["name"].as_str(), &p["wins"], &p["losses"], &p["draws"]),
        (Some("Ada"), &json!(1), &json!(0), &json!(0))
    );
    let board = s.get("/leaderboard").await;
    assert_eq!(
        (board[0]["name"].as_str(), &board[0]["points"]),
        (Some("Ada"), &json!(1.0))
    );
    assert_eq!(
        (board[1]["name"].as_str(), &board[1]["points"]),
        (Some("Bob"), &json!(0.0))
    );
    let page = s.http.get(&s.url).send().await.expect("the page");
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.text()
            .await
            .expect("html")
            .contains("<title>factum chess</title>")
    );
}

#[tokio::test]
async fn a_live_match_streams_each_change_as_a_server_sent_event() {
    let s = server().await;
    let (white, _, id) = s.paired().await;
    let mut live = s
        .http
        .get(format!("{}/matches/{id}/live", s.url))
        .send()
        .await
        .expect("subscribes");
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    while !text.contains("\n\n") {
        text.push_str(&String::from_utf8_lossy(
            &live.chunk().await.expect("reads").expect("a chunk"),
        ));
    }
    assert!(text.starts_with("event: match\ndata: {"), "{text}");
    assert!(text.contains("\"moves\":[]"), "{text}");
    s.ok(
        "POST",
        &format!("/matches/{id}/moves"),
        json!({ "player": white, "uci": "e2e4" }),
    )
    .await;
    let mut text = String::new();
    while !text.contains("\"moves\":[\"e2e4\"]") {
        text.push_str(&String::from_utf8_lossy(
            &live.chunk().await.expect("reads").expect("a chunk"),
        ));
    }
    assert!(text.contains("\"turn\":\"black\""), "{text}");
}

#[tokio::test]
async fn bad_input_gets_a_4xx_naming_what_was_wrong_and_stores_nothing() {
    let s = server().await;
    let (white, black, id) = s.paired().await;
    let moves = format!("/matches/{id}/moves");
    let cases: Vec<(&str, String, Value, u16, String)> = vec![
        (
            "an empty name",
            "/players".into(),
            json!({ "name": " " }),
            400,
            "a player name cannot be empty".into(),
        ),
        (
            "a body without its field",
            "/players".into(),
            json!({}),
            422,
            "missing field `name`".into(),
        ),
        (
            "an unknown field",
            "/players".into(),
            json!({ "name": "x", "elo": 3000 }),
            422,
            "unknown field `elo`".into(),
        ),
        (
            "an unknown host",
            "/lobby".into(),
            json!({ "player": "p-nobody" }),
            404,
            "no player `p-nobody`".into(),
        ),
        (
            "an unknown lobby",
            "/lobby/NOPE42/join".into(),
            json!({ "player": black }),
            404,
            "no lobby with join code `NOPE42`".into(),
        ),
        (
            "a full lobby",
            format!("/lobby/{id}/join"),
            json!({ "player": black }),
            409,
            format!("the lobby `{id}` is joined"),
        ),
        (
            "an unknown match",
            "/matches/nope/moves".into(),
            json!({ "player": white, "uci": "e2e4" }),
            404,
            "no match `nope`".into(),
        ),
        (
            "an illegal move",
            moves.clone(),
            json!({ "player": white, "uci": "e2e5" }),
            422,
            "`e2e5` is not a legal move in rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1".into(),
        ),
        (
            "not a move",
            moves.clone(),
            json!({ "player": white, "uci": "Nf3!" }),
            400,
            "`Nf3!` is not a move in UCI notation".into(),
        ),
        (
            "a move out of turn",
            moves.clone(),
            json!({ "player": black, "uci": "e7e5" }),
            409,
            format!("it is white's turn, and player `{black}` plays black"),
        ),
        (
            "a move by someone not in the match",
            moves.clone(),
            json!({ "player": "p-eve", "uci": "e2e4" }),
            403,
            "player `p-eve` does not play in this match".into(),
        ),
        (
            "a resignation by someone not in the match",
            format!("/matches/{id}/resign"),
            json!({ "player": "p-eve" }),
            403,
            "player `p-eve` does not play in this match".into(),
        ),
        (
            "an unknown draw action",
            format!("/matches/{id}/draw"),
            json!({ "player": white, "action": "maybe" }),
            422,
            "unknown variant `maybe`".into(),
        ),
        (
            "accepting a draw nobody offered",
            format!("/matches/{id}/draw"),
            json!({ "player": black, "action": "accept" }),
            409,
            "there is no draw offer from the opponent to answer".into(),
        ),
    ];
    for (what, path, body, status, message) in cases {
        let head = s.head().await;
        let (got, answer) = s.call("POST", &path, Some(body)).await;
        assert_eq!(got, status, "{what}: {answer}");
        let text = answer["error"].as_str().unwrap_or_default();
        assert!(
            text.contains(&message),
            "{what}: `{text}` does not say `{message}`"
        );
        assert_eq!(s.head().await, head, "{what}: nothing stored");
    }
    let head = s.head().await;
    let (status, answer) = s.raw("/players", Some("application/json"), "{\"name\": ").await;
    assert_eq!(status, 400, "malformed JSON: {answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("Failed to parse the request body as JSON"),
        "{answer}"
    );
    let (status, answer) = s.raw("/players", None, "{\"name\": \"x\"}").await;
    assert_eq!(status, 415, "no content type: {answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("Content-Type"),
        "{answer}"
    );
    for path in [
        "/players/p-nobody",
        "/players/p-nobody/archive",
        "/matches/nope",
        "/matches/nope/history",
    ] {
        let (status, answer) = s.call("GET", path, None).await;
        assert_eq!(status, 404, "{path}: {answer}");
    }
    assert_eq!(s.head().await, head, "nothing stored");
    let m = s.get(&format!("/matches/{id}")).await;
    assert_eq!(
        (m["moves"].as_array().map(Vec::len), m["status"].as_str()),
        (Some(0), Some("playing"))
    );
}

/// The service stops (its runtime dropped: every task it ran ends) while
/// black thinks; black's flag falls while nothing runs; the restarted service
/// fires the stored timer and white wins on time.
#[test]
fn a_flag_that_falls_while_the_service_is_down_ends_the_game_after_the_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chess.db");
    let clock = ManualClock::new(Timestamp::parse("2030-01-01T12:00:00Z").expect("parses"));
    let settings = Settings {
        clock: Duration::from_secs(60),
        ..Settings::default()
    };
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime")
    };
    let (white, black, id) = runtime().block_on(async {
        let app = Chess::builder()
            .clock(clock.clone())
            .sqlite(&db)
            .expect("opens")
            .build();
        let s = serve(Chess::start(app, settings).await.expect("starts")).await;
        let (white, black, id) = s.paired().await;
        clock.advance(Duration::from_secs(20));
        s.ok(
            "POST",
            &format!("/matches/{id}/moves"),
            json!({ "player": white, "uci": "e2e4" }),
        )
        .await;
        s.chess
            .settle()
            .await
            .expect("the clock consumer has set black's timer");
        let pending = s.chess.app().timers().pending().await.expect("pending");
        assert!(
            pending
                .iter()
                .any(|t| t.entity_id == id && t.command_type.contains("FlagFall")),
            "{pending:?}"
        );
        (white, black, id)
    });
    clock.advance(Duration::from_secs(120)); // black's minute runs out while the service is down
    runtime().block_on(async {
        let app = Chess::builder()
            .clock(clock.clone())
            .sqlite(&db)
            .expect("reopens")
            .build();
        let chess = Chess::start(app, settings).await.expect("restarts");
        chess
            .app()
            .timers()
            .wait_idle()
            .await
            .expect("the due timer fired");
        let m = chess.get_match(&id).await.expect("match");
        assert_eq!(
            (m.status.as_str(), m.result.as_deref()),
            ("finished", Some("1-0")),
            "{m:?}"
        );
        assert_eq!(m.reason, Some(factum_examples::chess::matches::Reason::Timeout));
        assert_eq!((m.white_ms, m.black_ms), (40_000, 0));
        chess.settle().await.expect("settle");
        assert_eq!(chess.player(&white).await.expect("white").wins, 1);
        assert_eq!(chess.player(&black).await.expect("black").losses, 1);
        let archive = chess.archive(&black).await.expect("archive");
        assert_eq!(archive[0].row.winner.as_deref(), Some(white.as_str()));
    });
}
