//! The chess views: `match_summary` (every match: position, move count, whose
//! turn, status), `match_archive` (finished matches, indexed by player) and
//! `leaderboard` (each player's results and points).
//!
//! Every field comes from an event (times from the events' own `at` or
//! `meta.recorded_at`, never the clock), so a rebuild from the log gives the
//! same rows; akka-chess's summary read the wall clock and ignored
//! `GameFinished`.

use factum::prelude::*;
use serde::{Deserialize, Serialize};

use super::matches::{
    Color, DrawDeclined, DrawOffered, GameFinished, GameResult, MatchStarted, PieceMoved, Reason,
};
use super::player::{MatchDrawn, MatchLost, MatchWon, PlayerRegistered};

/// The FEN of the starting position.
pub const START_FEN: &str = "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1";

/// The side to move in a FEN (its second field); white for the usual start.
fn side_to_move(fen: Option<&str>) -> Color {
    match fen.and_then(|f| f.split_whitespace().nth(1)) {
        Some("b") => Color::Black,
        _ => Color::White,
    }
}

/// One match, as the lobby page and spectators see it.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatchSummary {
    /// White's player id.
    pub white: String,
    /// Black's player id.
    pub black: String,
    /// The position.
    pub fen: String,
    /// Half-moves played.
    pub moves: u32,
    /// The last move in SAN.
    pub last_move: Option<String>,
    /// The side to move.
    pub turn: Option<Color>,
    /// `playing` or `finished`.
    pub status: String,
    /// The result, once finished.
    pub result: Option<GameResult>,
    /// Why it ended.
    pub reason: Option<Reason>,
    /// A standing draw offer.
    pub draw_offer: Option<Color>,
    /// White's time left at `clock_at`, in milliseconds.
    pub white_ms: u64,
    /// Black's time left at `clock_at`, in milliseconds.
    pub black_ms: u64,
    /// When the clocks were last read (the side to move's runs from here).
    pub clock_at: Timestamp,
}

#[view(name = "match_summary", version = 1, index = [status])]
impl MatchSummary {
    #[on]
    fn started(&mut self, e: &MatchStarted) {
        *self = MatchSummary {
            white: e.white.clone(),
            black: e.black.clone(),
            fen: e.from_fen.clone().unwrap_or_else(|| START_FEN.to_owned()),
            turn: Some(side_to_move(e.from_fen.as_deref())),
            status: "playing".to_owned(),
            white_ms: e.clock_ms,
            black_ms: e.clock_ms,
            clock_at: e.at,
            ..MatchSummary::default()
        };
    }

    #[on]
    fn moved(&mut self, e: &PieceMoved) {
        self.fen = e.fen.clone();
        self.moves = e.ply;
        self.last_move = Some(e.san.clone());
        self.turn = Some(e.color.other());
        self.draw_offer = None;
        self.white_ms = e.white_ms;
        self.black_ms = e.black_ms;
        self.clock_at = e.at;
    }

    #[on]
    fn offered(&mut self, e: &DrawOffered) {
        self.draw_offer = Some(e.color);
    }

    #[on]
    fn declined(&mut self, _e: &DrawDeclined) {
        self.draw_offer = None;
    }

    #[on]
    fn finished(&mut self, e: &GameFinished) {
        self.status = "finished".to_owned();
        self.result = Some(e.result);
        self.reason = Some(e.reason);
        self.turn = None;
        self.draw_offer = None;
        self.white_ms = e.white_ms;
        self.black_ms = e.black_ms;
        self.clock_at = e.at;
    }
}

/// A finished match, found by either player.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArchivedMatch {
    /// White's player id.
    pub white: String,
    /// Black's player id.
    pub black: String,
    /// The result.
    pub result: Option<GameResult>,
    /// Why it ended.
    pub reason: Option<Reason>,
    /// The winner's player id.
    pub winner: Option<String>,
    /// Half-moves played.
    pub plies: u32,
    /// When it ended.
    pub finished_at: Timestamp,
}

#[view(name = "match_archive", version = 1, index = [white, black])]
impl ArchivedMatch {
    #[on]
    fn finished(&mut self, e: &GameFinished) {
        *self = ArchivedMatch {
            white: e.white.clone(),
            black: e.black.clone(),
            result: Some(e.result),
            reason: Some(e.reason),
            winner: e.winner.clone(),
            plies: e.plies,
            finished_at: e.at,
        };
    }
}

/// A player's standing.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standing {
    /// The player's name.
    pub name: String,
    /// Matches won.
    pub wins: u32,
    /// Matches lost.
    pub losses: u32,
    /// Matches drawn.
    pub draws: u32,
    /// Points counted in halves: two a win, one a draw (so 1½ points is 3).
    pub half_points: u32,
    /// When the standing last changed.
    pub updated_at: Timestamp,
}

impl Standing {
    /// Points: one a win, a half a draw.
    pub fn points(&self) -> f64 {
        f64::from(self.half_points) / 2.0
    }

    /// Games scored.
    pub fn games(&self) -> u32 {
        self.wins + self.losses + self.draws
    }
}

#[view(name = "leaderboard", version = 1, index = [name])]
impl Standing {
    #[on]
    fn registered(&mut self, e: &PlayerRegistered, meta: &EventMeta) {
        self.name = e.name.clone();
        self.updated_at = meta.recorded_at;
    }

    #[on]
    fn won(&mut self, _e: &MatchWon, meta: &EventMeta) {
        self.wins += 1;
        self.half_points += 2;
        self.updated_at = meta.recorded_at;
    }

    #[on]
    fn lost(&mut self, _e: &MatchLost, meta: &EventMeta) {
        self.losses += 1;
        self.updated_at = meta.recorded_at;
    }

    #[on]
    fn drawn(&mut self, _e: &MatchDrawn, meta: &EventMeta) {
        self.draws += 1;
        self.half_points += 1;
        self.updated_at = meta.recorded_at;
    }
}
