//! The spectators' feed: every match event of a game reaches JetStream once,
//! under `[prefix.]match.<event>.<match id>` (the event `match.started` is
//! `match.started.<id>`), and nothing else does.

use factum::nats::async_nats::{self, jetstream};
use factum_examples::chess::feed;
use factum_examples::chess::games::FOOLS_MATE;
use factum_examples::chess::matches::Color;
use factum_examples::chess::service::{Chess, Settings};

#[tokio::test]
#[cfg_attr(not(factum_nats), ignore = "needs FACTUM_NATS_URL")]
async fn a_game_is_published_to_jetstream_event_by_event() {
    let url =
        std::env::var("FACTUM_NATS_URL").expect("FACTUM_NATS_URL is set where this test is built to run");
    let client = async_nats::connect(url.as_str()).await.expect("NATS answers");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let (stream, prefix) = (
        format!("CHESS_T_{}_{nanos}", std::process::id()),
        format!("t{}n{nanos}", std::process::id()),
    );

    let chess = Chess::start(Chess::builder().build(), Settings::default())
        .await
        .expect("starts");
    let producer = feed::start(chess.app(), client.clone(), "chess_feed", &stream, Some(&prefix))
        .await
        .expect("the producer starts");
    let white = chess.register("Ada").await.expect("registers");
    let black = chess.register("Bob").await.expect("registers");
    let code = chess.open_lobby(&white).await.expect("lobby");
    let id = chess.join_lobby(&code, &black).await.expect("join");
    let mut turn = Color::White;
    for uci in FOOLS_MATE {
        let player = if turn == Color::White { &white } else { &black };
        turn = chess
            .play(&id, player, uci)
            .await
            .expect("moves")
            .turn
            .unwrap_or(turn);
    }
    producer
        .wait_for(chess.app().store().head().await.expect("head"))
        .await
        .expect("published");

    let js = jetstream::new(client);
    let mut info = js.get_stream(&stream).await.expect("the stream");
    let state = info.info().await.expect("info").state.clone();
    assert_eq!(
        state.messages, 6,
        "started, four moves, finished: one message each"
    );
    let mut subjects = Vec::new();
    for seq in 1..=state.messages {
        let message = info.get_raw_message(seq).await.expect("a message");
        subjects.push(message.subject.to_string());
    }
    let expected: Vec<String> = [
        "started",
        "piece_moved",
        "piece_moved",
        "piece_moved",
        "piece_moved",
        "game_finished",
    ]
    .iter()
    .map(|event| format!("{prefix}.match.{event}.{id}"))
    .collect();
    assert_eq!(
        subjects, expected,
        "the match's events, in order, nothing else (no player or lobby event)"
    );
    js.delete_stream(&stream).await.expect("cleans up");
}
