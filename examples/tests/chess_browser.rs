//! The web page in headless Chromium, driven over WebDriver (Debian's
//! `chromium` and `chromium-driver`; `.ci/run` installs them): two players
//! register in two browsers, pair through the lobby, play Fool's Mate by
//! clicking the board, and both pages show the result, the archive and the
//! leaderboard. The final board is saved as a PNG under the test target
//! directory (`CARGO_TARGET_TMPDIR/chess-final-board.png`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use factum_examples::chess::http::router;
use factum_examples::chess::service::{Chess, Settings};
use serde_json::{Value, json};

/// How long one page may take to show what a click caused (a bound on a
/// wait, never a timing assertion: the check is what the page shows).
const PATIENCE: Duration = Duration::from_secs(30);

struct Driver {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("addr")
            .port();
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let started = Instant::now();
        loop {
            if let Ok(r) = driver.http.get(format!("{}/status", driver.url)).send().await
                && r.json::<Value>().await.is_ok_and(|v| v["value"]["ready"] == true)
            {
                return driver;
            }
            assert!(started.elapsed() < PATIENCE, "chromedriver did not get ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .expect("webdriver answers")
            .json()
            .await
            .expect("json");
        assert!(answer["value"].get("error").is_none(), "{path}: {answer}");
        answer["value"].clone()
    }

    async fn browser(&self) -> Browser<'_> {
        let caps = json!({ "capabilities": { "alwaysMatch": { "browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,900"]
        } } } });
        let session = self.call(reqwest::Method::POST, "/session", Some(caps)).await;
        Browser {
            driver: self,
            session: session["sessionId"].as_str().expect("a session id").to_owned(),
        }
    }
}

struct Browser<'d> {
    driver: &'d Driver,
    session: String,
}

impl Browser<'_> {
    async fn post(&self, path: &str, body: Value) -> Value {
        self.driver
            .call(
                reqwest::Method::POST,
                &format!("/session/{}{path}", self.session),
                Some(body),
            )
            .await
    }

    async fn get(&self, path: &str) -> Value {
        self.driver
            .call(
                reqwest::Method::GET,
                &format!("/session/{}{path}", self.session),
                None,
            )
            .await
    }

    async fn open(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await;
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("an element")
            .to_owned()
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    async fn type_in(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.post(&format!("/element/{id}/value"), json!({ "text": text }))
            .await;
    }

    async fn text(&self, css: &str) -> String {
        let id = self.element(css).await;
        self.get(&format!("/element/{id}/text"))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the element's text contains `wanted`; fails naming what it showed instead.
    async fn shows(&self, css: &str, wanted: &str) -> String {
        self.shows_that(css, |text| text.contains(wanted), wanted).await
    }

    /// Waits until the element's text passes `test`; fails naming what it showed instead.
    async fn shows_that(&self, css: &str, test: impl Fn(&str) -> bool, wanted: &str) -> String {
        let started = Instant::now();
        loop {
            let text = self.text(css).await;
            if test(&text) {
                return text;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "`{css}` shows `{text}`, never {wanted}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn play(&self, uci: &str) {
        self.click(&format!("[data-sq=\"{}\"]", &uci[..2])).await;
        self.click(&format!("[data-sq=\"{}\"]", &uci[2..4])).await;
    }

    async fn screenshot(&self) -> Vec<u8> {
        let png = self.get("/screenshot").await;
        base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64"))
            .expect("decodes")
    }

    async fn close(self) {
        self.driver
            .call(
                reqwest::Method::DELETE,
                &format!("/session/{}", self.session),
                None,
            )
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(factum_chromedriver),
    ignore = "needs /usr/bin/chromedriver and /usr/bin/chromium"
)]
async fn two_players_pair_in_the_lobby_and_play_to_mate_by_clicking_the_board() {
    let chess = Chess::start(Chess::builder().build(), Settings::default())
        .await
        .expect("starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router(chess)).await });

    let driver = Driver::start().await;
    let ada = driver.browser().await;
    let bob = driver.browser().await;
    for (page, name) in [(&ada, "Ada"), (&bob, "Bob")] {
        page.open(&url).await;
        page.type_in("#name", name).await;
        page.click("#register").await;
        page.shows("#me", name).await;
    }
    ada.click("#open-lobby").await;
    let code = ada
        .shows_that("#code", |code| code.len() == 6, "a join code")
        .await;
    bob.type_in("#join-code", &code).await;
    bob.click("#join").await;
    bob.shows("#status", "white to move; you play black").await;
    ada.shows("#status", "white to move; you play white").await;

    // Fool's Mate: each click pair on one page shows on the other, live.
    let moves = [
        (&ada, "f2f3", "1. f3"),
        (&bob, "e7e5", "e5"),
        (&ada, "g2g4", "2. g4"),
        (&bob, "d8h4", "Qh4#"),
    ];
    for (i, (page, uci, san)) in moves.into_iter().enumerate() {
        page.play(uci).await;
        let other = if i % 2 == 0 { &bob } else { &ada };
        other.shows("#moves", san).await;
    }
    for page in [&ada, &bob] {
        page.shows("#status", "0-1 (checkmate)").await;
        page.shows("#archive", "0-1").await;
        page.shows("#audit", "match.game_finished").await;
    }
    let board = ada.shows("#leaderboard", "Bob").await;
    assert!(board.contains("Bob 1 1 0 0"), "the leaderboard: {board}");
    assert!(board.contains("Ada 0 0 1 0"), "the leaderboard: {board}");

    let png = ada.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("chess-final-board.png");
    std::fs::write(&path, png).expect("saves the screenshot");
    println!("the final board: {}", path.display());
    ada.close().await;
    bob.close().await;
}
