//! The chess service's operations in domain words, over an [`App`]: what the
//! HTTP API, the demo and the tests call.
//!
//! Every operation checks what it is given before it sends anything (an
//! unknown player, match or lobby is refused by name, and nothing is
//! stored); every command's failure comes back to the caller as a
//! [`ChessError`] with the HTTP status it maps to. Nothing is fire and forget.

use std::time::Duration;

use factum::prelude::*;
use factum::workflow::{Status, WorkflowRejection};
use serde::{Deserialize, Serialize};

use super::clock::GameClock;
use super::lobby::{Lobby, LobbyStatus};
use super::matches::{
    AcceptDraw, Color, DeclineDraw, MakeMove, Match, MatchError, OfferDraw, Reason, Resign,
};
use super::pairing::{Join, OpenPairing, Pairing, PairingError, PairingOutcome};
use super::player::{Player, PlayerError, Register};
use super::scoring::Scoring;
use super::views::{ArchivedMatch, MatchSummary, Standing};

/// How the service plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Each side's time for a game.
    pub clock: Duration,
    /// How long a lobby waits for a second player.
    pub lobby_ttl: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            clock: Duration::from_secs(5 * 60),
            lobby_ttl: super::pairing::LOBBY_TTL,
        }
    }
}

/// What went wrong, with the HTTP status it is answered with.
#[derive(Debug, thiserror::Error)]
pub enum ChessError {
    /// No player under this id.
    #[error("no player `{0}`")]
    UnknownPlayer(String),
    /// No match under this id.
    #[error("no match `{0}`")]
    UnknownMatch(String),
    /// No lobby under this code.
    #[error("no lobby with join code `{0}`")]
    UnknownLobby(String),
    /// The lobby is not open any more.
    #[error("the lobby `{code}` is {status}: it takes no more players")]
    LobbyClosed {
        /// The code.
        code: String,
        /// `joined` or `expired`.
        status: &'static str,
    },
    /// The player refused.
    #[error("{0}")]
    Player(PlayerError),
    /// The match refused.
    #[error("{0}")]
    Match(MatchError),
    /// The pairing refused.
    #[error("{0}")]
    Pairing(PairingError),
    /// The request names something that does not exist in the API.
    #[error("{0}")]
    BadRequest(String),
    /// The store or a subsystem failed; nothing was refused.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ChessError {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            ChessError::UnknownPlayer(_) | ChessError::UnknownMatch(_) | ChessError::UnknownLobby(_) => 404,
            ChessError::LobbyClosed { .. } => 409,
            ChessError::Player(PlayerError::AlreadyRegistered(_) | PlayerError::AlreadyScored(_)) => 409,
            ChessError::Player(_) | ChessError::Pairing(_) | ChessError::BadRequest(_) => 400,
            ChessError::Match(e) => match e {
                MatchError::NotInMatch(_) => 403,
                MatchError::NotUci(_)
                | MatchError::MissingPlayer(_)
                | MatchError::SamePlayer(_)
                | MatchError::NoTime(_) => 400,
                MatchError::Illegal { .. } => 422,
                _ => 409,
            },
            ChessError::Internal(_) => 500,
        }
    }

    fn internal(e: impl std::fmt::Display) -> ChessError {
        ChessError::Internal(e.to_string())
    }
}

/// A player as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlayerInfo {
    /// The id.
    pub id: String,
    /// The name.
    pub name: String,
    /// Matches won.
    pub wins: u32,
    /// Matches lost.
    pub losses: u32,
    /// Matches drawn.
    pub draws: u32,
    /// The matches the player was seated in.
    pub matches: Vec<String>,
}

/// A match as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatchInfo {
    /// The id.
    pub id: String,
    /// White's player id.
    pub white: String,
    /// Black's player id.
    pub black: String,
    /// The position in FEN.
    pub fen: String,
    /// The moves in UCI.
    pub moves: Vec<String>,
    /// The moves in SAN.
    pub san: Vec<String>,
    /// The side to move (`white`/`black`); `null` once over.
    pub turn: Option<Color>,
    /// `playing` or `finished`.
    pub status: String,
    /// `1-0`, `0-1`, `1/2-1/2`, or `null` while playing.
    pub result: Option<String>,
    /// Why it ended.
    pub reason: Option<Reason>,
    /// The side whose draw offer stands.
    pub draw_offer: Option<Color>,
    /// White's time left now, in milliseconds.
    pub white_ms: u64,
    /// Black's time left now, in milliseconds.
    pub black_ms: u64,
}

/// One event of an audit trail, with its metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The version in its stream.
    pub version: u64,
    /// The position in the log.
    pub position: u64,
    /// The event type.
    pub event: String,
    /// The payload.
    pub data: serde_json::Value,
    /// When its command ran.
    pub recorded_at: String,
    /// The command that produced it.
    pub command_id: String,
    /// The event that caused the command (a consumer's or workflow's), if any.
    pub causation_id: Option<String>,
    /// The business transaction.
    pub correlation_id: String,
}

/// A finished match in a player's archive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArchiveEntry {
    /// The match.
    pub id: String,
    /// The row.
    #[serde(flatten)]
    pub row: ArchivedMatch,
}

/// A row of the leaderboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaderRow {
    /// The player.
    pub id: String,
    /// The name.
    pub name: String,
    /// One a win, a half a draw.
    pub points: f64,
    /// Wins.
    pub wins: u32,
    /// Losses.
    pub losses: u32,
    /// Draws.
    pub draws: u32,
}

/// What to do about a draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrawAction {
    /// Offer one.
    Offer,
    /// Accept the opponent's.
    Accept,
    /// Decline the opponent's.
    Decline,
}

/// The chess service over an app. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Chess {
    app: App,
    settings: Settings,
}

/// Draws a join code: 6 characters without look-alikes (0/O, 1/I).
fn draw_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    Uuid::new_v4().as_bytes()[..6]
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

impl Chess {
    /// Starts the views and consumers the service needs and returns it.
    /// The app must be built with `.timer::<Match, FlagFall>()` (see [`Chess::builder`]).
    pub async fn start(app: App, settings: Settings) -> Result<Chess, ChessError> {
        app.start_views().await.map_err(ChessError::internal)?;
        app.consumers()
            .start(GameClock)
            .await
            .map_err(ChessError::internal)?;
        app.consumers()
            .start(Scoring)
            .await
            .map_err(ChessError::internal)?;
        Ok(Chess { app, settings })
    }

    /// An app builder with what the service's stored timers need to fire
    /// after a restart registered.
    pub fn builder() -> factum::AppBuilder {
        App::builder().timer::<Match, super::matches::FlagFall>()
    }

    /// The app underneath.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The settings.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// Waits until every view and consumer has seen the log's head: what was
    /// done before this call shows in the views and has been scored.
    pub async fn settle(&self) -> Result<(), ChessError> {
        let head = self.app.store().head().await.map_err(ChessError::internal)?;
        for name in ["chess_clock", "chess_scoring"] {
            let consumer = self.app.consumers().get(name).map_err(ChessError::internal)?;
            consumer.wait_for(head).await.map_err(ChessError::internal)?;
        }
        let head = self.app.store().head().await.map_err(ChessError::internal)?;
        self.views_at(head).await
    }

    async fn views_at(&self, position: u64) -> Result<(), ChessError> {
        self.app
            .view::<MatchSummary>()
            .wait_for(position)
            .await
            .map_err(ChessError::internal)?;
        self.app
            .view::<ArchivedMatch>()
            .wait_for(position)
            .await
            .map_err(ChessError::internal)?;
        self.app
            .view::<Standing>()
            .wait_for(position)
            .await
            .map_err(ChessError::internal)
    }

    async fn registered(&self, id: &str) -> Result<Player, ChessError> {
        if id.is_empty() {
            return Err(ChessError::UnknownPlayer(id.to_owned()));
        }
        let player = self
            .app
            .entity::<Player>(id)
            .state()
            .await
            .map_err(ChessError::internal)?;
        if !player.registered {
            return Err(ChessError::UnknownPlayer(id.to_owned()));
        }
        Ok(player)
    }

    async fn started(&self, id: &str) -> Result<Match, ChessError> {
        if id.is_empty() {
            return Err(ChessError::UnknownMatch(id.to_owned()));
        }
        let state = self
            .app
            .entity::<Match>(id)
            .state()
            .await
            .map_err(ChessError::internal)?;
        if !state.started {
            return Err(ChessError::UnknownMatch(id.to_owned()));
        }
        Ok(state)
    }

    /// Registers a player; returns its id.
    pub async fn register(&self, name: &str) -> Result<String, ChessError> {
        let id = format!("p-{}", &Uuid::new_v4().simple().to_string()[..12]);
        match self
            .app
            .entity::<Player>(&id)
            .send(Register {
                name: name.to_owned(),
            })
            .await
        {
            Ok(_) => Ok(id),
            Err(CommandError::Rejected(e)) => Err(ChessError::Player(e)),
            Err(e) => Err(ChessError::internal(e)),
        }
    }

    /// A player's name and results.
    pub async fn player(&self, id: &str) -> Result<PlayerInfo, ChessError> {
        let p = self.registered(id).await?;
        Ok(PlayerInfo {
            id: id.to_owned(),
            name: p.name,
            wins: p.wins,
            losses: p.losses,
            draws: p.draws,
            matches: p.matches,
        })
    }

    /// Opens a lobby for `host` (who will play white); returns its join code
    /// once the lobby is waiting.
    pub async fn open_lobby(&self, host: &str) -> Result<String, ChessError> {
        self.registered(host).await?;
        let open = OpenPairing {
            host: host.to_owned(),
            clock_ms: u64::try_from(self.settings.clock.as_millis()).unwrap_or(u64::MAX),
            ttl_ms: u64::try_from(self.settings.lobby_ttl.as_millis()).unwrap_or(u64::MAX),
        };
        for _ in 0..8 {
            let code = draw_code();
            let pairing = self.app.workflow::<Pairing>(&code);
            match pairing.start(open.clone()).await {
                Ok(_) => {}
                Err(CommandError::Rejected(WorkflowRejection::AlreadyStarted { .. })) => continue,
                Err(CommandError::Rejected(WorkflowRejection::Refused(e))) => {
                    return Err(ChessError::Pairing(e));
                }
                Err(e) => return Err(ChessError::internal(e)),
            }
            return match pairing.wait_paused().await.map_err(ChessError::internal)? {
                Status::Paused { .. } => Ok(code),
                other => Err(ChessError::Internal(format!(
                    "lobby {code} did not open: {other}"
                ))),
            };
        }
        Err(ChessError::Internal("no free join code after 8 draws".to_owned()))
    }

    /// Joins the lobby `code` as `guest` (who plays black); returns the match
    /// id once the match has started.
    pub async fn join_lobby(&self, code: &str, guest: &str) -> Result<String, ChessError> {
        self.registered(guest).await?;
        let pairing = self.app.workflow::<Pairing>(code);
        match pairing
            .signal(Join {
                guest: guest.to_owned(),
            })
            .await
        {
            Ok(_) => {}
            Err(CommandError::Rejected(WorkflowRejection::NotAccepting { status, .. })) => {
                if status == Status::NotStarted {
                    return Err(ChessError::UnknownLobby(code.to_owned()));
                }
                let lobby = self
                    .app
                    .entity::<Lobby>(code)
                    .state()
                    .await
                    .map_err(ChessError::internal)?;
                let status = match lobby.status {
                    LobbyStatus::Expired => "expired",
                    LobbyStatus::Joined => "joined",
                    LobbyStatus::Open | LobbyStatus::None => "busy",
                };
                return Err(ChessError::LobbyClosed {
                    code: code.to_owned(),
                    status,
                });
            }
            Err(CommandError::Rejected(WorkflowRejection::Refused(e))) => return Err(ChessError::Pairing(e)),
            Err(CommandError::Rejected(e)) => return Err(ChessError::BadRequest(e.to_string())),
            Err(e) => return Err(ChessError::internal(e)),
        }
        let status = pairing.wait_for_end().await.map_err(ChessError::internal)?;
        let state = pairing
            .state()
            .await
            .map_err(ChessError::internal)?
            .unwrap_or_default();
        match (state.outcome, state.match_id) {
            (PairingOutcome::Paired, Some(id)) => Ok(id),
            _ => Err(ChessError::Internal(format!(
                "pairing {code} ended {status} without a match"
            ))),
        }
    }

    async fn send_to_match(
        &self,
        id: &str,
        command: impl Into<<Match as Entity>::Command>,
    ) -> Result<MatchInfo, ChessError> {
        self.started(id).await?;
        match self.app.entity::<Match>(id).send(command).await {
            Ok(_) => self.get_match(id).await,
            Err(CommandError::Rejected(e)) => Err(ChessError::Match(e)),
            Err(e) => Err(ChessError::internal(e)),
        }
    }

    /// Plays a move in UCI.
    pub async fn play(&self, id: &str, player: &str, uci: &str) -> Result<MatchInfo, ChessError> {
        let command = MakeMove {
            player: player.to_owned(),
            uci: uci.to_owned(),
        };
        self.send_to_match(id, command).await
    }

    /// Resigns.
    pub async fn resign(&self, id: &str, player: &str) -> Result<MatchInfo, ChessError> {
        self.send_to_match(
            id,
            Resign {
                player: player.to_owned(),
            },
        )
        .await
    }

    /// Offers, accepts or declines a draw.
    pub async fn draw(&self, id: &str, player: &str, action: DrawAction) -> Result<MatchInfo, ChessError> {
        let player = player.to_owned();
        match action {
            DrawAction::Offer => self.send_to_match(id, OfferDraw { player }).await,
            DrawAction::Accept => self.send_to_match(id, AcceptDraw { player }).await,
            DrawAction::Decline => self.send_to_match(id, DeclineDraw { player }).await,
        }
    }

    /// A match: players, position, moves, whose turn, status, result, clocks now.
    pub async fn get_match(&self, id: &str) -> Result<MatchInfo, ChessError> {
        let m = self.started(id).await?;
        let now = self.app.env().clock().now();
        let over = m.finished.is_some();
        Ok(MatchInfo {
            id: id.to_owned(),
            white: m.white.clone(),
            black: m.black.clone(),
            fen: m.fen(),
            turn: (!over).then(|| m.turn()),
            status: if over { "finished" } else { "playing" }.to_owned(),
            result: m.finished.map(|(result, _)| result.pgn().to_owned()),
            reason: m.finished.map(|(_, reason)| reason),
            draw_offer: m.draw_offer,
            white_ms: m.left_ms(Color::White, now),
            black_ms: m.left_ms(Color::Black, now),
            moves: m.moves,
            san: m.san,
        })
    }

    /// A match's audit trail: every event with who, which command, when.
    pub async fn history(&self, id: &str) -> Result<Vec<AuditEntry>, ChessError> {
        self.started(id).await?;
        let records = self
            .app
            .entity::<Match>(id)
            .history()
            .await
            .map_err(ChessError::internal)?;
        records
            .into_iter()
            .map(|r| {
                let bytes = factum::EventSet::encode(&r.event, Codec::Json).map_err(ChessError::internal)?;
                Ok(AuditEntry {
                    version: r.version,
                    position: r.position,
                    event: factum::EventSet::name(&r.event).to_owned(),
                    data: serde_json::from_slice(&bytes).map_err(ChessError::internal)?,
                    recorded_at: r.metadata.recorded_at.to_string(),
                    command_id: r.metadata.command_id.to_string(),
                    causation_id: r.metadata.causation_id.map(|c| c.to_string()),
                    correlation_id: r.metadata.correlation_id.to_string(),
                })
            })
            .collect()
    }

    /// A player's finished matches, newest first (read after the views caught up).
    pub async fn archive(&self, player: &str) -> Result<Vec<ArchiveEntry>, ChessError> {
        self.registered(player).await?;
        let head = self.app.store().head().await.map_err(ChessError::internal)?;
        self.views_at(head).await?;
        let archive = self.app.view::<ArchivedMatch>();
        let mut rows = archive
            .find_by_white(player)
            .await
            .map_err(ChessError::internal)?;
        rows.extend(
            archive
                .find_by_black(player)
                .await
                .map_err(ChessError::internal)?,
        );
        let mut out: Vec<ArchiveEntry> = rows
            .into_iter()
            .map(|(id, row)| ArchiveEntry { id, row })
            .collect();
        out.sort_by(|a, b| {
            b.row
                .finished_at
                .cmp(&a.row.finished_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(out)
    }

    /// Every player by points, then wins, then name.
    pub async fn leaderboard(&self) -> Result<Vec<LeaderRow>, ChessError> {
        let head = self.app.store().head().await.map_err(ChessError::internal)?;
        self.views_at(head).await?;
        let board = self.app.view::<Standing>();
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = board
                .list(cursor.as_deref(), 500)
                .await
                .map_err(ChessError::internal)?;
            out.extend(page.rows.into_iter().map(|(id, s)| LeaderRow {
                id,
                points: s.points(),
                name: s.name,
                wins: s.wins,
                losses: s.losses,
                draws: s.draws,
            }));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        out.sort_by(|a, b| {
            b.points
                .total_cmp(&a.points)
                .then(b.wins.cmp(&a.wins))
                .then_with(|| a.name.cmp(&b.name))
        });
        Ok(out)
    }

    /// The matches being played, from the `match_summary` view.
    pub async fn active(&self) -> Result<Vec<(String, MatchSummary)>, ChessError> {
        self.app
            .view::<MatchSummary>()
            .find_by_status("playing")
            .await
            .map_err(ChessError::internal)
    }
}
