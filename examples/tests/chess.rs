//! The chess domain on the test kit and an in-memory app with virtual time:
//! the rules (mate, stalemate, repetition, fifty moves, insufficient
//! material, resign, draws, the flag), the pairing workflow, the game clock,
//! the views and the scoring consumer, and one test per akka-chess defect
//! the issue lists (named `akka_…`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use factum::consumer::LetterState;
use factum::prelude::*;
use factum::store::{AppendRequest, Appended, Snapshot, StoreError};
use factum::testkit::{self, VirtualTime};
use factum::{EventStore, MemoryStore, RecordedEvent, View};
use factum_examples::chess::clock::timer_name;
use factum_examples::chess::lobby::{Lobby, LobbyStatus};
use factum_examples::chess::matches::{
    Color, FlagFall, GameFinished, GameResult, MakeMove, Match, MatchError, MatchStarted, Reason, Resign,
    StartMatch,
};
use factum_examples::chess::pairing::{Pairing, PairingError, PairingOutcome};
use factum_examples::chess::player::{Outcome, Player, PlayerError, RecordResult, Register};
use factum_examples::chess::service::{Chess, ChessError, DrawAction, MatchInfo, Settings};
use factum_examples::chess::views::{ArchivedMatch, MatchSummary, Standing};

const T0: &str = "2030-01-01T12:00:00Z";
const FOOLS_MATE: [&str; 4] = ["f2f3", "e7e5", "g2g4", "d8h4"];
const SCHOLARS_MATE: [&str; 7] = ["e2e4", "e7e5", "f1c4", "b8c6", "d1h5", "g8f6", "h5f7"];

fn t0() -> Timestamp {
    Timestamp::parse(T0).expect("T0 parses")
}

struct Table {
    chess: Chess,
    time: VirtualTime,
}

async fn table_on(app: App, time: VirtualTime, settings: Settings) -> Table {
    let chess = Chess::start(app, settings).await.expect("the service starts");
    Table { chess, time }
}

async fn table() -> Table {
    let time = VirtualTime::at(t0());
    let app = Chess::builder().clock(time.clock()).build();
    table_on(app, time, Settings::default()).await
}

impl Table {
    async fn player(&self, name: &str) -> String {
        self.chess.register(name).await.expect("registers")
    }

    /// Two players paired through a lobby: (white, black, match).
    async fn paired(&self) -> (String, String, String) {
        let white = self.player("Ada").await;
        let black = self.player("Bob").await;
        let code = self.chess.open_lobby(&white).await.expect("opens a lobby");
        let id = self.chess.join_lobby(&code, &black).await.expect("joins");
        (white, black, id)
    }

    /// Plays `moves` from the side to move on, alternating.
    async fn play(&self, id: &str, moves: &[&str]) -> MatchInfo {
        let mut info = self.chess.get_match(id).await.expect("the match");
        for uci in moves {
            let player = match info.turn.expect("the game is on") {
                Color::White => info.white.clone(),
                Color::Black => info.black.clone(),
            };
            info = self.chess.play(id, &player, uci).await.expect("a legal move");
        }
        info
    }

    async fn head(&self) -> u64 {
        self.chess.app().store().head().await.expect("head")
    }
}

/// A match started directly on the entity (not through the lobby), from `fen`.
async fn started_at(app: &App, id: &str, fen: Option<&str>, clock_ms: u64) {
    app.entity::<Match>(id)
        .send(StartMatch {
            white: "w".into(),
            black: "b".into(),
            clock_ms,
            from_fen: fen.map(str::to_owned),
        })
        .await
        .expect("starts");
}

async fn move_as(app: &App, id: &str, player: &str, uci: &str) -> Result<(), CommandError<MatchError>> {
    app.entity::<Match>(id)
        .send(MakeMove {
            player: player.into(),
            uci: uci.into(),
        })
        .await
        .map(|_| ())
}

// ---- the rules -------------------------------------------------------------

#[tokio::test]
async fn fools_mate_is_a_win_for_black_by_checkmate() {
    let t = table().await;
    let (_, black, id) = t.paired().await;
    let info = t.play(&id, &FOOLS_MATE).await;
    assert_eq!(info.status, "finished");
    assert_eq!(info.result.as_deref(), Some("0-1"));
    assert_eq!(info.reason, Some(Reason::Checkmate));
    assert_eq!(info.turn, None);
    let last = t
        .chess
        .app()
        .entity::<Match>(&id)
        .history()
        .await
        .expect("history");
    match &last.last().expect("events").event {
        factum_examples::chess::matches::MatchEvent::GameFinished(e) => {
            assert_eq!(e.winner.as_deref(), Some(black.as_str()))
        }
        other => panic!("the last event is {other:?}"),
    }
}

#[tokio::test]
async fn the_shortest_stalemate_is_a_draw() {
    let t = table().await;
    let (_, _, id) = t.paired().await;
    // Sam Loyd's ten-move stalemate.
    let moves = [
        "e2e3", "a7a5", "d1h5", "a8a6", "h5a5", "h7h5", "h2h4", "a6h6", "a5c7", "f7f6", "c7d7", "e8f7",
        "d7b7", "d8d3", "b7b8", "d3h7", "b8c8", "f7g6", "c8e6",
    ];
    let info = t.play(&id, &moves).await;
    assert_eq!(
        (info.result.as_deref(), info.reason),
        (Some("1/2-1/2"), Some(Reason::Stalemate))
    );
}

#[tokio::test]
async fn the_third_repetition_of_a_position_is_a_draw() {
    let t = table().await;
    let (_, _, id) = t.paired().await;
    let dance = ["g1f3", "g8f6", "f3g1", "f6g8"];
    let info = t.play(&id, &dance).await;
    assert_eq!(
        info.status, "playing",
        "the start position twice is not yet a draw"
    );
    let info = t.play(&id, &dance).await;
    assert_eq!(
        (info.result.as_deref(), info.reason),
        (Some("1/2-1/2"), Some(Reason::Repetition))
    );
    assert_eq!(info.moves.len(), 8);
}

#[tokio::test]
async fn the_hundredth_half_move_without_capture_or_pawn_move_is_a_draw() {
    let app = App::in_memory();
    started_at(&app, "m", Some("k7/8/8/8/8/8/8/K6R w - - 99 80"), 60_000).await;
    move_as(&app, "m", "w", "h1h2").await.expect("a quiet rook move");
    let m = app.entity::<Match>("m").state().await.expect("state");
    assert_eq!(m.finished, Some((GameResult::Draw, Reason::FiftyMoves)));
}

#[tokio::test]
async fn a_bare_king_against_a_bare_king_is_a_draw() {
    let app = App::in_memory();
    started_at(&app, "m", Some("8/8/8/8/8/8/1q6/K6k w - - 0 1"), 60_000).await;
    move_as(&app, "m", "w", "a1b2")
        .await
        .expect("the king takes the queen");
    let m = app.entity::<Match>("m").state().await.expect("state");
    assert_eq!(m.finished, Some((GameResult::Draw, Reason::InsufficientMaterial)));
}

#[tokio::test]
async fn a_resignation_gives_the_game_to_the_other_side() {
    let t = table().await;
    let (white, _, id) = t.paired().await;
    t.play(&id, &["e2e4"]).await;
    let info = t.chess.resign(&id, &white).await.expect("resigns");
    assert_eq!(
        (info.result.as_deref(), info.reason),
        (Some("0-1"), Some(Reason::Resignation))
    );
    let again = t.chess.resign(&id, &white).await.expect_err("the game is over");
    assert_eq!(again.status(), 409, "{again}");
}

#[tokio::test]
async fn a_draw_is_offered_declined_offered_again_and_accepted() {
    let t = table().await;
    let (white, black, id) = t.paired().await;
    let info = t
        .chess
        .draw(&id, &white, DrawAction::Offer)
        .await
        .expect("offers");
    assert_eq!(info.draw_offer, Some(Color::White));
    let own = t
        .chess
        .draw(&id, &white, DrawAction::Accept)
        .await
        .expect_err("one cannot accept one's own offer");
    assert!(matches!(own, ChessError::Match(MatchError::NoOffer)), "{own}");
    let info = t
        .chess
        .draw(&id, &black, DrawAction::Decline)
        .await
        .expect("declines");
    assert_eq!((info.draw_offer, info.status.as_str()), (None, "playing"));
    t.chess
        .draw(&id, &white, DrawAction::Offer)
        .await
        .expect("offers again");
    let info = t
        .chess
        .draw(&id, &black, DrawAction::Accept)
        .await
        .expect("accepts");
    assert_eq!(
        (info.result.as_deref(), info.reason),
        (Some("1/2-1/2"), Some(Reason::Agreement))
    );
}

#[tokio::test]
async fn a_move_after_the_flag_fell_ends_the_game_on_time_instead() {
    let start = MatchStarted {
        white: "w".into(),
        black: "b".into(),
        clock_ms: 1_000,
        from_fen: None,
        at: t0(),
    };
    testkit::given::<Match>([start.into()])
        .at(t0() + Duration::from_secs(2))
        .when(MakeMove {
            player: "w".into(),
            uci: "e2e4".into(),
        })
        .then([GameFinished {
            white: "w".into(),
            black: "b".into(),
            result: GameResult::BlackWins,
            reason: Reason::Timeout,
            winner: Some("b".into()),
            plies: 0,
            white_ms: 0,
            black_ms: 1_000,
            at: t0() + Duration::from_secs(2),
        }
        .into()]);
}

#[tokio::test]
async fn a_stale_flag_fall_changes_nothing() {
    let start = MatchStarted {
        white: "w".into(),
        black: "b".into(),
        clock_ms: 1_000,
        from_fen: None,
        at: t0(),
    };
    // Not yet out of time, and a firing for an earlier ply.
    testkit::given::<Match>([start.clone().into()])
        .at(t0() + Duration::from_millis(500))
        .when(FlagFall { ply: 0 })
        .then_nothing();
    testkit::given::<Match>([start.into()])
        .at(t0() + Duration::from_secs(5))
        .when(FlagFall { ply: 3 })
        .then_nothing();
}

#[tokio::test]
async fn a_flag_falls_on_the_durable_timer_when_nobody_moves() {
    let time = VirtualTime::at(t0());
    let app = Chess::builder().clock(time.clock()).build();
    let settings = Settings {
        clock: Duration::from_secs(60),
        ..Settings::default()
    };
    let t = table_on(app, time, settings).await;
    let (_, black, id) = t.paired().await;
    t.time
        .advance(t.chess.app().timers(), Duration::from_secs(10))
        .await
        .expect("advance");
    t.play(&id, &["e2e4"]).await; // white used 10 s
    t.chess.settle().await.expect("settle");
    let pending = t.chess.app().timers().pending().await.expect("pending");
    let clock = pending
        .iter()
        .find(|p| p.name == timer_name(&id))
        .expect("the clock timer");
    assert_eq!(
        clock.due,
        t0() + Duration::from_secs(70),
        "black's minute, from white's move at 10 s"
    );
    let fired = t
        .time
        .advance(t.chess.app().timers(), Duration::from_secs(60))
        .await
        .expect("advance");
    assert!(fired.iter().any(|f| f.name == timer_name(&id)), "{fired:?}");
    let info = t.chess.get_match(&id).await.expect("match");
    assert_eq!(
        (info.result.as_deref(), info.reason),
        (Some("1-0"), Some(Reason::Timeout))
    );
    assert_eq!(info.black_ms, 0);
    assert_eq!(info.white_ms, 50_000);
    t.chess.settle().await.expect("settle");
    assert_eq!(t.chess.player(&black).await.expect("black").losses, 1);
}

#[tokio::test]
async fn a_flag_against_a_bare_king_is_a_draw() {
    let time = VirtualTime::at(t0());
    let app = Chess::builder().clock(time.clock()).build();
    let t = table_on(app, time, Settings::default()).await;
    started_at(t.chess.app(), "m", Some("k7/8/8/8/8/8/8/K6R w - - 0 1"), 1_000).await;
    t.chess.settle().await.expect("settle");
    t.time
        .advance(t.chess.app().timers(), Duration::from_secs(2))
        .await
        .expect("advance");
    let m = t.chess.app().entity::<Match>("m").state().await.expect("state");
    assert_eq!(
        m.finished,
        Some((GameResult::Draw, Reason::TimeoutVsInsufficientMaterial))
    );
}

#[tokio::test]
async fn bad_moves_are_refused_by_name_and_store_nothing() {
    let t = table().await;
    let (white, black, id) = t.paired().await;
    let stranger = t.player("Eve").await;
    let head = t.head().await;
    let cases = [
        (black.as_str(), "e7e5", "it is white's turn"),
        (
            white.as_str(),
            "e2e5",
            "`e2e5` is not a legal move in rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1",
        ),
        (white.as_str(), "castle", "`castle` is not a move in UCI notation"),
        (stranger.as_str(), "e2e4", "does not play in this match"),
    ];
    for (player, uci, message) in cases {
        let err = t.chess.play(&id, player, uci).await.expect_err("refused");
        assert!(err.to_string().contains(message), "{uci}: {err}");
    }
    assert_eq!(t.head().await, head, "nothing stored");
}

// ---- the pairing workflow --------------------------------------------------

#[tokio::test]
async fn a_lobby_nobody_joins_expires_after_its_time_to_live() {
    let time = VirtualTime::at(t0());
    let app = Chess::builder().clock(time.clock()).build();
    let settings = Settings {
        lobby_ttl: Duration::from_secs(600),
        ..Settings::default()
    };
    let t = table_on(app, time, settings).await;
    let host = t.player("Ada").await;
    let guest = t.player("Bob").await;
    let code = t.chess.open_lobby(&host).await.expect("opens");
    t.time
        .advance(t.chess.app().timers(), Duration::from_secs(599))
        .await
        .expect("advance");
    let pairing = t.chess.app().workflow::<Pairing>(&code);
    assert!(matches!(
        pairing.wait_settled().await.expect("status"),
        factum::workflow::Status::Paused { .. }
    ));
    t.time
        .advance(t.chess.app().timers(), Duration::from_secs(1))
        .await
        .expect("advance");
    pairing.wait_for_end().await.expect("ends");
    assert_eq!(
        pairing.state().await.expect("state").expect("started").outcome,
        PairingOutcome::Expired
    );
    assert_eq!(
        t.chess
            .app()
            .entity::<Lobby>(&code)
            .state()
            .await
            .expect("lobby")
            .status,
        LobbyStatus::Expired
    );
    let late = t.chess.join_lobby(&code, &guest).await.expect_err("too late");
    assert!(
        matches!(
            &late,
            ChessError::LobbyClosed {
                status: "expired",
                ..
            }
        ),
        "{late}"
    );
    assert_eq!(late.status(), 409);
}

#[tokio::test]
async fn pairing_starts_the_match_and_seats_both_players() {
    let t = table().await;
    let (white, black, id) = t.paired().await;
    let info = t.chess.get_match(&id).await.expect("match");
    assert_eq!(
        (info.white.as_str(), info.black.as_str(), info.turn),
        (white.as_str(), black.as_str(), Some(Color::White))
    );
    assert_eq!(
        t.chess.player(&white).await.expect("white").matches,
        vec![id.clone()]
    );
    assert_eq!(
        t.chess.player(&black).await.expect("black").matches,
        vec![id.clone()]
    );
    let lobby = t.chess.app().entity::<Lobby>(&id).state().await.expect("lobby");
    assert_eq!(
        (lobby.status, lobby.guest.as_deref()),
        (LobbyStatus::Joined, Some(black.as_str()))
    );
    let again = t
        .chess
        .join_lobby(&id, &t.player("Eve").await)
        .await
        .expect_err("full");
    assert!(
        matches!(again, ChessError::LobbyClosed { status: "joined", .. }),
        "{again}"
    );
}

// ---- akka-chess's defects, one test each -----------------------------------

/// akka-chess built `GameFinished` with its arguments in the wrong order.
#[tokio::test]
async fn akka_game_finished_names_each_side_and_the_winner_right() {
    let t = table().await;
    let (white, black, id) = t.paired().await;
    t.play(&id, &SCHOLARS_MATE).await;
    let history = t
        .chess
        .app()
        .entity::<Match>(&id)
        .history()
        .await
        .expect("history");
    let Some(factum_examples::chess::matches::MatchEvent::GameFinished(e)) =
        history.last().map(|r| r.event.clone())
    else {
        panic!("no GameFinished at the end of {history:?}");
    };
    assert_eq!(
        (e.white.as_str(), e.black.as_str()),
        (white.as_str(), black.as_str())
    );
    assert_eq!(
        (e.result, e.reason, e.winner.as_deref()),
        (GameResult::WhiteWins, Reason::Checkmate, Some(white.as_str()))
    );
    assert_eq!(e.plies, 7);
}

/// akka-chess's scoring compared strings so that black won every decisive game.
#[tokio::test]
async fn akka_scoring_credits_the_winner_whichever_colour_won() {
    let t = table().await;
    let (ada, bob, first) = t.paired().await; // Ada white
    t.play(&first, &SCHOLARS_MATE).await; // white wins
    let code = t.chess.open_lobby(&ada).await.expect("lobby");
    let second = t.chess.join_lobby(&code, &bob).await.expect("join"); // Ada white again
    t.play(&second, &FOOLS_MATE).await; // black wins
    t.chess.settle().await.expect("settle");
    let (a, b) = (
        t.chess.player(&ada).await.expect("ada"),
        t.chess.player(&bob).await.expect("bob"),
    );
    assert_eq!((a.wins, a.losses, b.wins, b.losses), (1, 1, 1, 1));
    let board = t.chess.leaderboard().await.expect("leaderboard");
    assert!(board.iter().all(|row| row.points == 1.0), "{board:?}");
}

/// akka-chess sent its commands fire and forget: a failure was lost.
#[tokio::test]
async fn akka_a_failed_score_is_parked_with_its_error_then_redriven_once() {
    let t = table().await;
    let app = t.chess.app();
    let known = t.player("Ada").await;
    app.entity::<Match>("m")
        .send(StartMatch {
            white: known.clone(),
            black: "p-ghost".into(),
            clock_ms: 60_000,
            from_fen: None,
        })
        .await
        .expect("starts");
    app.entity::<Match>("m")
        .send(Resign {
            player: known.clone(),
        })
        .await
        .expect("resigns");
    let scoring = app.consumers().get("chess_scoring").expect("scoring runs");
    scoring.wait_idle().await.expect("idle");
    let parked = scoring
        .dead_letters(Some(&[LetterState::Parked]))
        .await
        .expect("letters");
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert!(
        parked[0].error.contains("no player is registered under this id"),
        "{}",
        parked[0].error
    );
    assert_eq!(parked[0].stream_id, "m");
    assert_eq!(
        t.chess.player(&known).await.expect("ada").losses,
        1,
        "white was scored before black failed"
    );
    // The ghost registers; the redrive scores it, and white's send is the same id: once.
    app.entity::<Player>("p-ghost")
        .send(Register { name: "Ghost".into() })
        .await
        .expect("registers");
    scoring.redrive(parked[0].position).await.expect("redrive");
    scoring.wait_idle().await.expect("idle");
    assert_eq!(t.chess.player("p-ghost").await.expect("ghost").wins, 1);
    assert_eq!(t.chess.player(&known).await.expect("ada").losses, 1, "not twice");
    assert!(
        scoring
            .dead_letters(Some(&[LetterState::Parked]))
            .await
            .expect("letters")
            .is_empty()
    );
}

/// akka-chess's score commands double-counted on redelivery.
#[tokio::test]
async fn akka_a_result_delivered_twice_scores_once() {
    let app = App::in_memory();
    let ada = app.entity::<Player>("ada");
    ada.send(Register { name: "Ada".into() })
        .await
        .expect("registers");
    let result = RecordResult {
        match_id: "m-1".into(),
        outcome: Outcome::Win,
        opponent: "bob".into(),
    };
    let once = SendOptions {
        command_id: Some(Uuid::new_v4()),
        ..SendOptions::default()
    };
    let first = ada.send_with(result.clone(), once).await.expect("scores");
    let again = ada
        .send_with(result.clone(), once)
        .await
        .expect("the same id: the same outcome");
    assert_eq!(first.position, again.position);
    let other_id = ada.send(result).await.expect_err("a second result for the match");
    assert_eq!(
        other_id.into_rejection(),
        Some(PlayerError::AlreadyScored("m-1".into()))
    );
    assert_eq!(ada.state().await.expect("state").wins, 1);
}

/// akka-chess cancelled its timer under another name than it created it
/// with, and registered it even when the create was rejected.
#[tokio::test]
async fn akka_the_clock_timer_is_cancelled_by_its_own_name_and_never_set_for_a_refused_start() {
    let t = table().await;
    let app = t.chess.app();
    let refused = app
        .entity::<Match>("same")
        .send(StartMatch {
            white: "p".into(),
            black: "p".into(),
            clock_ms: 60_000,
            from_fen: None,
        })
        .await
        .expect_err("one player cannot play both sides");
    assert_eq!(refused.into_rejection(), Some(MatchError::SamePlayer("p".into())));
    let unknown = t.chess.open_lobby("p-nobody").await.expect_err("no such host");
    assert!(matches!(unknown, ChessError::UnknownPlayer(_)), "{unknown}");
    t.chess.settle().await.expect("settle");
    assert!(
        app.timers().pending().await.expect("pending").is_empty(),
        "a refused create sets no timer"
    );

    let (white, _, id) = t.paired().await;
    t.chess.settle().await.expect("settle");
    let clock_timers = || async {
        let pending = app.timers().pending().await.expect("pending");
        pending
            .into_iter()
            .map(|p| p.name)
            .filter(|n| n.starts_with("chess.clock:"))
            .collect::<Vec<_>>()
    };
    assert_eq!(clock_timers().await, [timer_name(&id)]);
    t.chess.resign(&id, &white).await.expect("resigns");
    t.chess.settle().await.expect("settle");
    assert!(
        clock_timers().await.is_empty(),
        "cancelled under the name it was set with"
    );
    // The pairing's own pause timer outlives the join (factum's workflows leave
    // it to fire late); when it does, it changes nothing.
    t.time
        .advance(app.timers(), Duration::from_secs(601))
        .await
        .expect("advance");
    assert!(app.timers().pending().await.expect("pending").is_empty());
    assert_eq!(
        app.entity::<Lobby>(&id).state().await.expect("lobby").status,
        LobbyStatus::Joined
    );
}

/// akka-chess kept every pending match in one global lobby entity.
#[tokio::test]
async fn akka_each_lobby_is_its_own_entity() {
    let t = table().await;
    let (ada, bob) = (t.player("Ada").await, t.player("Bob").await);
    let (a, b) = tokio::join!(t.chess.open_lobby(&ada), t.chess.open_lobby(&bob));
    let (a, b) = (a.expect("a"), b.expect("b"));
    assert_ne!(a, b);
    for (code, host) in [(&a, &ada), (&b, &bob)] {
        let history = t
            .chess
            .app()
            .entity::<Lobby>(code)
            .history()
            .await
            .expect("history");
        assert_eq!(history.len(), 1, "only its own pending match");
        assert_eq!(
            t.chess
                .app()
                .entity::<Lobby>(code)
                .state()
                .await
                .expect("lobby")
                .host,
            *host
        );
    }
    assert_eq!(
        t.chess
            .app()
            .entity::<Lobby>("main")
            .version()
            .await
            .expect("version"),
        0,
        "no global lobby"
    );
}

/// akka-chess's summary view read the wall clock (rebuilds differed) and ignored GameFinished.
#[tokio::test]
async fn akka_views_fold_game_finished_and_rebuild_to_the_same_rows() {
    let store = Arc::new(MemoryStore::new());
    let time = VirtualTime::at(t0());
    let app = Chess::builder()
        .clock(time.clock())
        .shared_store(store.clone())
        .build();
    let t = table_on(app, time.clone(), Settings::default()).await;
    let (white, black, first) = t.paired().await;
    t.play(&first, &FOOLS_MATE).await;
    let code = t.chess.open_lobby(&black).await.expect("lobby");
    let second = t.chess.join_lobby(&code, &white).await.expect("join");
    t.play(&second, &["e2e4", "e7e5"]).await;
    t.chess.settle().await.expect("settle");

    let summary = t
        .chess
        .app()
        .view::<MatchSummary>()
        .get(&first)
        .await
        .expect("row")
        .expect("a row");
    assert_eq!(
        (summary.status.as_str(), summary.result, summary.reason),
        ("finished", Some(GameResult::BlackWins), Some(Reason::Checkmate))
    );
    let archive = t.chess.archive(&white).await.expect("archive");
    assert_eq!(archive.len(), 1, "only the finished match: {archive:?}");
    assert_eq!(archive[0].id, first);
    assert_eq!(archive[0].row.winner.as_deref(), Some(black.as_str()));
    assert_eq!(t.chess.active().await.expect("active").len(), 1);

    // A second app over the same log, a day later by its clock, folds every view again.
    time.clock().advance(Duration::from_secs(86_400));
    let later = Chess::builder().clock(time.clock()).shared_store(store).build();
    let rebuilt = Chess::start(later, Settings::default()).await.expect("starts");
    rebuilt.settle().await.expect("settle");
    async fn rows<V: View>(app: &App) -> Vec<(String, V)> {
        app.view::<V>().list(None, 1_000).await.expect("rows").rows
    }
    assert_eq!(
        rows::<MatchSummary>(rebuilt.app()).await,
        rows::<MatchSummary>(t.chess.app()).await
    );
    assert_eq!(
        rows::<ArchivedMatch>(rebuilt.app()).await,
        rows::<ArchivedMatch>(t.chess.app()).await
    );
    assert_eq!(
        rows::<Standing>(rebuilt.app()).await,
        rows::<Standing>(t.chess.app()).await
    );
    assert_eq!(rows::<MatchSummary>(rebuilt.app()).await.len(), 2);
}

/// akka-chess created a match for any player ids.
#[tokio::test]
async fn akka_a_match_is_only_made_between_two_registered_players() {
    let t = table().await;
    let ada = t.player("Ada").await;
    let head = t.head().await;
    let unknown_host = t.chess.open_lobby("p-nobody").await.expect_err("unknown host");
    assert_eq!(
        (unknown_host.status(), unknown_host.to_string()),
        (404, "no player `p-nobody`".to_owned())
    );
    let code = t.chess.open_lobby(&ada).await.expect("lobby");
    let head = (head, t.head().await);
    let unknown_guest = t
        .chess
        .join_lobby(&code, "p-nobody")
        .await
        .expect_err("unknown guest");
    assert_eq!(unknown_guest.status(), 404);
    let own = t.chess.join_lobby(&code, &ada).await.expect_err("own lobby");
    assert!(
        matches!(own, ChessError::Pairing(PairingError::OwnLobby(_))),
        "{own}"
    );
    assert_eq!(t.head().await, head.1, "refused joins store nothing");
    assert_eq!(
        t.chess
            .app()
            .entity::<Lobby>(&code)
            .state()
            .await
            .expect("lobby")
            .status,
        LobbyStatus::Open
    );
    assert!(head.0 < head.1);
}

/// A store that counts the events it hands out per stream read.
struct Counting {
    inner: MemoryStore,
    match_events_read: AtomicU64,
}

#[async_trait::async_trait]
impl EventStore for Counting {
    async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        self.inner.append(request).await
    }
    async fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let page = self
            .inner
            .read_stream(stream_type, stream_id, from, limit)
            .await?;
        if stream_type == "match" {
            self.match_events_read
                .fetch_add(page.len() as u64, Ordering::SeqCst);
        }
        Ok(page)
    }
    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(from, limit).await
    }
    async fn stream_version(&self, stream_type: &str, stream_id: &str) -> Result<u64, StoreError> {
        self.inner.stream_version(stream_type, stream_id).await
    }
    async fn head(&self) -> Result<u64, StoreError> {
        self.inner.head().await
    }
    fn watch_head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.watch_head()
    }
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot).await
    }
    async fn load_snapshot(
        &self,
        stream_type: &str,
        stream_id: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(stream_type, stream_id).await
    }
    fn backend(&self) -> &'static str {
        "counting memory"
    }
}

/// akka-chess replayed every move on every call.
#[tokio::test]
async fn akka_a_move_is_decided_on_the_kept_board_without_replaying_the_game() {
    let store = Arc::new(Counting {
        inner: MemoryStore::new(),
        match_events_read: AtomicU64::new(0),
    });
    let app = Chess::builder()
        .shared_store(store.clone())
        .consumer_store(factum::consumer::MemoryConsumerStore::new())
        .timer_store(factum::timer::MemoryTimerStore::new())
        .build();
    let t = table_on(app, VirtualTime::at(t0()), Settings::default()).await;
    let (_, _, id) = t.paired().await;
    let before = store.match_events_read.load(Ordering::SeqCst);
    // Ten moves, each a check, the move and the answer: no stream read hands out an event again.
    let moves = [
        "e2e4", "e7e5", "g1f3", "b8c6", "f1c4", "g8f6", "d2d3", "f8c5", "c2c3", "d7d6",
    ];
    t.play(&id, &moves).await;
    let after = store.match_events_read.load(Ordering::SeqCst);
    assert_eq!(
        after - before,
        0,
        "the cached match was caught up with nothing to read: {} events read",
        after - before
    );
    assert_eq!(
        t.chess.get_match(&id).await.expect("match").moves.len(),
        moves.len()
    );
}
