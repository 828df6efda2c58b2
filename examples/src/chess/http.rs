//! The chess service over HTTP (axum): the JSON API, live match updates as
//! server-sent events from the `match_summary` view's change stream, and the
//! web page, compiled into the binary.
//!
//! Every error is a JSON body `{"error": "..."}` with a 4xx status naming what
//! was wrong (the unknown player, the illegal move and the position, the
//! missing field of a malformed body), or a 500 when a subsystem failed.

use std::convert::Infallible;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;

use super::service::{Chess, ChessError, DrawAction};
use super::views::MatchSummary;

/// The web page: board, lobby, live match, archive, leaderboard, audit trail.
pub const PAGE: &str = include_str!("page.html");

/// An error answer: a status and a message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl From<ChessError> for ApiError {
    fn from(e: ChessError) -> Self {
        ApiError {
            status: StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message: e.to_string(),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError {
            status: e.status(),
            message: e.body_text(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

type Answer = Result<Response, ApiError>;

fn ok(value: impl serde::Serialize) -> Answer {
    Ok(Json(value).into_response())
}

/// `POST /players`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPlayer {
    /// The name.
    pub name: String,
}

/// A body naming the acting player.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByPlayer {
    /// The player id.
    pub player: String,
}

/// `POST /matches/{id}/moves`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMove {
    /// The player id.
    pub player: String,
    /// The move in UCI.
    pub uci: String,
}

/// `POST /matches/{id}/draw`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrawBody {
    /// The player id.
    pub player: String,
    /// `offer`, `accept` or `decline`.
    pub action: DrawAction,
}

/// The router: the API, the live stream and the page.
pub fn router(chess: Chess) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/players", post(register))
        .route("/players/{id}", get(player))
        .route("/players/{id}/archive", get(archive))
        .route("/lobby", post(open_lobby))
        .route("/lobby/{code}/join", post(join_lobby))
        .route("/matches", get(active))
        .route("/matches/{id}", get(get_match))
        .route("/matches/{id}/moves", post(make_move))
        .route("/matches/{id}/resign", post(resign))
        .route("/matches/{id}/draw", post(draw))
        .route("/matches/{id}/history", get(history))
        .route("/matches/{id}/live", get(live))
        .route("/leaderboard", get(leaderboard))
        .fallback(|| async {
            ApiError {
                status: StatusCode::NOT_FOUND,
                message: "no such route: see the API list in the README".to_owned(),
            }
        })
        .with_state(chess)
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn register(State(chess): State<Chess>, body: Result<Json<NewPlayer>, JsonRejection>) -> Answer {
    let Json(body) = body?;
    let id = chess.register(&body.name).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

async fn player(State(chess): State<Chess>, Path(id): Path<String>) -> Answer {
    ok(chess.player(&id).await?)
}

async fn archive(State(chess): State<Chess>, Path(id): Path<String>) -> Answer {
    ok(chess.archive(&id).await?)
}

async fn open_lobby(State(chess): State<Chess>, body: Result<Json<ByPlayer>, JsonRejection>) -> Answer {
    let Json(body) = body?;
    let code = chess.open_lobby(&body.player).await?;
    Ok((StatusCode::CREATED, Json(json!({ "code": code }))).into_response())
}

async fn join_lobby(
    State(chess): State<Chess>,
    Path(code): Path<String>,
    body: Result<Json<ByPlayer>, JsonRejection>,
) -> Answer {
    let Json(body) = body?;
    let id = chess.join_lobby(&code, &body.player).await?;
    ok(json!({ "match": id }))
}

async fn active(State(chess): State<Chess>) -> Answer {
    let rows: Vec<_> = chess
        .active()
        .await?
        .into_iter()
        .map(|(id, row)| json!({ "id": id, "white": row.white, "black": row.black, "moves": row.moves, "turn": row.turn }))
        .collect();
    ok(rows)
}

async fn get_match(State(chess): State<Chess>, Path(id): Path<String>) -> Answer {
    ok(chess.get_match(&id).await?)
}

async fn make_move(
    State(chess): State<Chess>,
    Path(id): Path<String>,
    body: Result<Json<NewMove>, JsonRejection>,
) -> Answer {
    let Json(body) = body?;
    ok(chess.play(&id, &body.player, &body.uci).await?)
}

async fn resign(
    State(chess): State<Chess>,
    Path(id): Path<String>,
    body: Result<Json<ByPlayer>, JsonRejection>,
) -> Answer {
    let Json(body) = body?;
    ok(chess.resign(&id, &body.player).await?)
}

async fn draw(
    State(chess): State<Chess>,
    Path(id): Path<String>,
    body: Result<Json<DrawBody>, JsonRejection>,
) -> Answer {
    let Json(body) = body?;
    ok(chess.draw(&id, &body.player, body.action).await?)
}

async fn history(State(chess): State<Chess>, Path(id): Path<String>) -> Answer {
    ok(chess.history(&id).await?)
}

async fn leaderboard(State(chess): State<Chess>) -> Answer {
    ok(chess.leaderboard().await?)
}

/// `GET /matches/{id}/live`: the match now, then again after every change
/// the `match_summary` view folds for it (a reader that lagged gets the
/// current match, never a gap).
async fn live(
    State(chess): State<Chess>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    chess.get_match(&id).await?;
    let changes = chess
        .app()
        .view::<MatchSummary>()
        .changes_of(id.clone())
        .map_err(|e| ApiError::from(ChessError::Internal(e.to_string())))?;
    let stream = futures_util::stream::unfold(
        (chess, id, changes, true),
        |(chess, id, mut changes, first)| async move {
            if !first {
                // Any change or a lag: send the match as it is now. A closed view ends the stream.
                if let Err(tokio::sync::broadcast::error::RecvError::Closed) = changes.next().await {
                    return None;
                }
            }
            let data = match chess.get_match(&id).await {
                Ok(m) => serde_json::to_string(&m).unwrap_or_default(),
                Err(e) => json!({ "error": e.to_string() }).to_string(),
            };
            Some((
                Ok(SseEvent::default().event("match").data(data)),
                (chess, id, changes, false),
            ))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
