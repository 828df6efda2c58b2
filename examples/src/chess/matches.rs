//! A match: two players, a board, a clock per side, and how it ended.
//!
//! Moves come in UCI (`e2e4`, `e7e8q`, castling as `e1g1`) and are judged by
//! the cozy-chess rules crate against the board the state keeps: a move is
//! one incremental `apply`, never a replay of the game (akka-chess replayed
//! every move on every call). The game ends on mate, stalemate, threefold
//! repetition, the 50-move rule, insufficient material, resignation, an
//! agreed draw, or a flag fall ([`FlagFall`], fired by the game clock's
//! durable timer, or noticed by the next move).

use std::fmt;
use std::time::Duration;

use cozy_chess::util::{display_san_move, display_uci_move, parse_uci_move};
use cozy_chess::{BitBoard, Board, GameStatus, Piece};
use factum::prelude::*;
use serde::{Deserialize, Serialize};

/// A side of the board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    /// Moves first.
    White,
    /// Moves second.
    Black,
}

impl Color {
    /// The other side.
    pub fn other(self) -> Color {
        match self {
            Color::White => Color::Black,
            Color::Black => Color::White,
        }
    }

    fn of(color: cozy_chess::Color) -> Color {
        match color {
            cozy_chess::Color::White => Color::White,
            cozy_chess::Color::Black => Color::Black,
        }
    }

    fn rules(self) -> cozy_chess::Color {
        match self {
            Color::White => cozy_chess::Color::White,
            Color::Black => cozy_chess::Color::Black,
        }
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Color::White => "white",
            Color::Black => "black",
        })
    }
}

/// A finished game's result, serialized in PGN form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GameResult {
    /// White won.
    #[serde(rename = "1-0")]
    WhiteWins,
    /// Black won.
    #[serde(rename = "0-1")]
    BlackWins,
    /// Drawn.
    #[serde(rename = "1/2-1/2")]
    Draw,
}

impl GameResult {
    /// `1-0`, `0-1` or `1/2-1/2`.
    pub fn pgn(self) -> &'static str {
        match self {
            GameResult::WhiteWins => "1-0",
            GameResult::BlackWins => "0-1",
            GameResult::Draw => "1/2-1/2",
        }
    }

    /// The winning side; `None` for a draw.
    pub fn winner(self) -> Option<Color> {
        match self {
            GameResult::WhiteWins => Some(Color::White),
            GameResult::BlackWins => Some(Color::Black),
            GameResult::Draw => None,
        }
    }

    fn won_by(color: Color) -> GameResult {
        match color {
            Color::White => GameResult::WhiteWins,
            Color::Black => GameResult::BlackWins,
        }
    }
}

/// Why a game ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The side to move is mated.
    Checkmate,
    /// The side to move has no legal move and is not in check.
    Stalemate,
    /// The same position for the third time (drawn at once, not on a claim).
    Repetition,
    /// Fifty moves by each side without a capture or a pawn move (drawn at once).
    FiftyMoves,
    /// Neither side has the material to mate.
    InsufficientMaterial,
    /// A player resigned.
    Resignation,
    /// The players agreed to a draw.
    Agreement,
    /// A flag fell.
    Timeout,
    /// A flag fell, but the other side has a bare king: drawn.
    TimeoutVsInsufficientMaterial,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Checkmate => "checkmate",
            Reason::Stalemate => "stalemate",
            Reason::Repetition => "threefold repetition",
            Reason::FiftyMoves => "the fifty-move rule",
            Reason::InsufficientMaterial => "insufficient material",
            Reason::Resignation => "resignation",
            Reason::Agreement => "agreement",
            Reason::Timeout => "time",
            Reason::TimeoutVsInsufficientMaterial => "time, against a bare king",
        })
    }
}

/// Start a match (the pairing workflow sends it once both players are known).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StartMatch {
    /// The player with the white pieces.
    pub white: String,
    /// The player with the black pieces.
    pub black: String,
    /// Each side's time for the whole game, in milliseconds.
    pub clock_ms: u64,
    /// A position to start from, in FEN (a study, an adjourned game); `None`: the usual start.
    #[serde(default)]
    pub from_fen: Option<String>,
}

/// Make a move.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MakeMove {
    /// Who moves.
    pub player: String,
    /// The move in UCI: `e2e4`, `e7e8q`, `e1g1`.
    pub uci: String,
}

/// Resign the game.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Resign {
    /// Who resigns.
    pub player: String,
}

/// Offer a draw.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OfferDraw {
    /// Who offers.
    pub player: String,
}

/// Accept the opponent's draw offer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AcceptDraw {
    /// Who accepts.
    pub player: String,
}

/// Decline the opponent's draw offer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeclineDraw {
    /// Who declines.
    pub player: String,
}

/// The game clock's timer: the side to move after `ply` half-moves runs out
/// of time now, unless a move came since. Sent by a durable timer, so it
/// arrives after a restart too; a late or stale one changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagFall {
    /// The number of half-moves played when the timer was set.
    pub ply: u32,
}

/// The match started.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "match.started")]
pub struct MatchStarted {
    /// White.
    pub white: String,
    /// Black.
    pub black: String,
    /// Each side's time, in milliseconds.
    pub clock_ms: u64,
    /// The starting position, when not the usual one (checked when the match started).
    pub from_fen: Option<String>,
    /// When the clocks started (the side to move's is running).
    pub at: Timestamp,
}

/// A move was made.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "match.piece_moved")]
pub struct PieceMoved {
    /// Who moved.
    pub player: String,
    /// The side that moved.
    pub color: Color,
    /// The move in UCI.
    pub uci: String,
    /// The move in SAN, for people.
    pub san: String,
    /// The position after the move, for readers that keep no board.
    pub fen: String,
    /// The half-move number of this move, from 1.
    pub ply: u32,
    /// White's time left after the move, in milliseconds.
    pub white_ms: u64,
    /// Black's time left after the move, in milliseconds.
    pub black_ms: u64,
    /// When.
    pub at: Timestamp,
}

/// A draw was offered.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "match.draw_offered")]
pub struct DrawOffered {
    /// Who offered.
    pub player: String,
    /// The side that offered.
    pub color: Color,
}

/// A draw offer was declined.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "match.draw_declined")]
pub struct DrawDeclined {
    /// Who declined.
    pub player: String,
}

/// The game is over.
///
/// Built in one place, [`Match::finish`], from the winning *side*: akka-chess
/// built its `GameFinished` with the arguments in the wrong order.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "match.game_finished")]
pub struct GameFinished {
    /// White.
    pub white: String,
    /// Black.
    pub black: String,
    /// The result.
    pub result: GameResult,
    /// Why it ended.
    pub reason: Reason,
    /// The winner's player id; `None` for a draw.
    pub winner: Option<String>,
    /// The half-moves played.
    pub plies: u32,
    /// White's time left, in milliseconds.
    pub white_ms: u64,
    /// Black's time left, in milliseconds.
    pub black_ms: u64,
    /// When.
    pub at: Timestamp,
}

/// Why a match refused a command. Each says what was wrong with the command.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    /// The match was started before.
    #[error("the match is already started")]
    AlreadyStarted,
    /// A player id is empty.
    #[error("a match needs two player ids, the {0} one is empty")]
    MissingPlayer(Color),
    /// Both seats name the same player.
    #[error("player `{0}` cannot play both sides")]
    SamePlayer(String),
    /// No time on the clock.
    #[error("a match needs time on the clock, {0} ms was given")]
    NoTime(u64),
    /// The starting position is not a position.
    #[error("`{0}` is not a legal position in FEN")]
    BadFen(String),
    /// The starting position is already over.
    #[error("the position `{0}` is already over: there is nothing to play")]
    OverBeforeStart(String),
    /// Nothing happened yet.
    #[error("the match has not started")]
    NotStarted,
    /// The game is over.
    #[error("the game is over: {result} by {reason}")]
    Over {
        /// The result, in PGN form.
        result: &'static str,
        /// Why.
        reason: Reason,
    },
    /// The player has no seat in this match.
    #[error("player `{0}` does not play in this match")]
    NotInMatch(String),
    /// The other side is to move.
    #[error("it is {turn}'s turn, and player `{player}` plays {color}")]
    NotYourTurn {
        /// Who tried to move.
        player: String,
        /// Their side.
        color: Color,
        /// The side to move.
        turn: Color,
    },
    /// The move is not UCI.
    #[error("`{0}` is not a move in UCI notation (like e2e4, or e7e8q for a promotion)")]
    NotUci(String),
    /// The move is UCI but not legal here.
    #[error("`{uci}` is not a legal move in {fen}")]
    Illegal {
        /// The move.
        uci: String,
        /// The position.
        fen: String,
    },
    /// The side offered a draw already.
    #[error("{0} has already offered a draw")]
    AlreadyOffered(Color),
    /// The opponent's offer stands: accept or decline it.
    #[error("{0} offered a draw: accept or decline it")]
    OfferStands(Color),
    /// Nothing to accept or decline.
    #[error("there is no draw offer from the opponent to answer")]
    NoOffer,
}

/// A match's state.
#[derive(Default, Clone, Debug, PartialEq)]
pub struct Match {
    /// White's player id.
    pub white: String,
    /// Black's player id.
    pub black: String,
    /// True once started.
    pub started: bool,
    /// The moves, in UCI.
    pub moves: Vec<String>,
    /// The moves, in SAN.
    pub san: Vec<String>,
    /// Each side's time for the game, in milliseconds.
    pub clock_ms: u64,
    /// White's time left at `last_at`.
    pub white_ms: u64,
    /// Black's time left at `last_at`.
    pub black_ms: u64,
    /// When the side to move's clock started running.
    pub last_at: Timestamp,
    /// The side whose draw offer stands.
    pub draw_offer: Option<Color>,
    /// The result and why, once over.
    pub finished: Option<(GameResult, Reason)>,
    board: Board,
    /// Hashes of the positions since the last capture or pawn move, the current one last.
    seen: Vec<u64>,
}

impl Match {
    /// The position in FEN.
    pub fn fen(&self) -> String {
        self.board.to_string()
    }

    /// The side to move.
    pub fn turn(&self) -> Color {
        Color::of(self.board.side_to_move())
    }

    /// The board.
    pub fn board(&self) -> &Board {
        &self.board
    }

    /// The player id of a side.
    pub fn player(&self, color: Color) -> &str {
        match color {
            Color::White => &self.white,
            Color::Black => &self.black,
        }
    }

    /// The side a player plays, if any.
    pub fn seat_of(&self, player: &str) -> Option<Color> {
        if player == self.white {
            Some(Color::White)
        } else if player == self.black {
            Some(Color::Black)
        } else {
            None
        }
    }

    /// A side's time left at `now`, in milliseconds: the side to move's clock runs.
    pub fn left_ms(&self, color: Color, now: Timestamp) -> u64 {
        let stored = match color {
            Color::White => self.white_ms,
            Color::Black => self.black_ms,
        };
        if self.finished.is_some() || color != self.turn() {
            return stored;
        }
        let spent = u64::try_from(now.since(self.last_at).as_millis()).unwrap_or(u64::MAX);
        stored.saturating_sub(spent)
    }

    /// When the side to move's flag falls if no move comes.
    pub fn flag_due(&self) -> Timestamp {
        let left = self.left_ms(self.turn(), self.last_at);
        self.last_at + Duration::from_millis(left)
    }

    /// The one way a `GameFinished` is built: from the winning side (none: a draw).
    pub fn finish(&self, winner: Option<Color>, reason: Reason, now: Timestamp) -> GameFinished {
        GameFinished {
            white: self.white.clone(),
            black: self.black.clone(),
            result: winner.map_or(GameResult::Draw, GameResult::won_by),
            reason,
            winner: winner.map(|side| self.player(side).to_owned()),
            plies: self.moves.len() as u32,
            white_ms: self.left_ms(Color::White, now),
            black_ms: self.left_ms(Color::Black, now),
            at: now,
        }
    }

    /// The side of `player`, in a match being played.
    fn playing_seat(&self, player: &str) -> Result<Color, MatchError> {
        if !self.started {
            return Err(MatchError::NotStarted);
        }
        if let Some((result, reason)) = self.finished {
            return Err(MatchError::Over {
                result: result.pgn(),
                reason,
            });
        }
        self.seat_of(player)
            .ok_or_else(|| MatchError::NotInMatch(player.to_owned()))
    }

    /// The side to move runs out of time: the other wins, unless it has a bare king.
    fn flag_fell(&self, now: Timestamp) -> GameFinished {
        let winner = self.turn().other();
        if bare_king(&self.board, winner) {
            self.finish(None, Reason::TimeoutVsInsufficientMaterial, now)
        } else {
            self.finish(Some(winner), Reason::Timeout, now)
        }
    }

    /// How the game ends in `after`, the position a move just reached, if it does.
    fn ending(&self, after: &Board, mover: Color) -> Option<(Option<Color>, Reason)> {
        match after.status() {
            GameStatus::Won => return Some((Some(mover), Reason::Checkmate)),
            GameStatus::Drawn if after.halfmove_clock() >= 100 => return Some((None, Reason::FiftyMoves)),
            GameStatus::Drawn => return Some((None, Reason::Stalemate)),
            GameStatus::Ongoing => {}
        }
        let hash = after.hash();
        let earlier = if after.halfmove_clock() == 0 {
            0
        } else {
            self.seen.iter().filter(|&&h| h == hash).count()
        };
        if earlier >= 2 {
            return Some((None, Reason::Repetition));
        }
        if insufficient_material(after) {
            return Some((None, Reason::InsufficientMaterial));
        }
        None
    }
}

/// True when `color` has nothing but its king.
fn bare_king(board: &Board, color: Color) -> bool {
    board.colors(color.rules()).len() == 1
}

/// True when no sequence of legal moves can mate: king against king with at
/// most one minor piece, or bishops only, all on squares of one colour.
fn insufficient_material(board: &Board) -> bool {
    let heavy = board.pieces(Piece::Pawn) | board.pieces(Piece::Rook) | board.pieces(Piece::Queen);
    if !heavy.is_empty() {
        return false;
    }
    let knights = board.pieces(Piece::Knight);
    let bishops = board.pieces(Piece::Bishop);
    if (knights | bishops).len() <= 1 {
        return true;
    }
    knights.is_empty()
        && ((bishops & BitBoard::LIGHT_SQUARES).is_empty() || (bishops & BitBoard::DARK_SQUARES).is_empty())
}

#[entity(name = "match")]
impl Match {
    #[handle]
    fn start(&self, cmd: StartMatch, ctx: &Context) -> Result<MatchStarted, MatchError> {
        if self.started {
            return Err(MatchError::AlreadyStarted);
        }
        if cmd.white.is_empty() {
            return Err(MatchError::MissingPlayer(Color::White));
        }
        if cmd.black.is_empty() {
            return Err(MatchError::MissingPlayer(Color::Black));
        }
        if cmd.white == cmd.black {
            return Err(MatchError::SamePlayer(cmd.white));
        }
        if cmd.clock_ms == 0 {
            return Err(MatchError::NoTime(0));
        }
        if let Some(fen) = &cmd.from_fen {
            let board: Board = fen.parse().map_err(|_| MatchError::BadFen(fen.clone()))?;
            if board.status() != GameStatus::Ongoing {
                return Err(MatchError::OverBeforeStart(fen.clone()));
            }
        }
        Ok(MatchStarted {
            white: cmd.white,
            black: cmd.black,
            clock_ms: cmd.clock_ms,
            from_fen: cmd.from_fen,
            at: ctx.now(),
        })
    }

    #[handle]
    fn make_move(
        &self,
        cmd: MakeMove,
        ctx: &Context,
    ) -> Result<(Option<PieceMoved>, Option<GameFinished>), MatchError> {
        let color = self.playing_seat(&cmd.player)?;
        let turn = self.turn();
        if color != turn {
            return Err(MatchError::NotYourTurn {
                player: cmd.player,
                color,
                turn,
            });
        }
        let now = ctx.now();
        let left = self.left_ms(turn, now);
        if left == 0 {
            // The flag fell before this move arrived (the timer may not have fired yet).
            return Ok((None, Some(self.flag_fell(now))));
        }
        let mv =
            parse_uci_move(&self.board, cmd.uci.trim()).map_err(|_| MatchError::NotUci(cmd.uci.clone()))?;
        let mut after = self.board.clone();
        if after.try_play(mv).is_err() {
            return Err(MatchError::Illegal {
                uci: cmd.uci,
                fen: self.fen(),
            });
        }
        let (white_ms, black_ms) = match turn {
            Color::White => (left, self.black_ms),
            Color::Black => (self.white_ms, left),
        };
        let moved = PieceMoved {
            player: cmd.player,
            color,
            uci: display_uci_move(&self.board, mv).to_string(),
            san: display_san_move(&self.board, mv).to_string(),
            fen: after.to_string(),
            ply: self.moves.len() as u32 + 1,
            white_ms,
            black_ms,
            at: now,
        };
        let finished = self.ending(&after, color).map(|(winner, reason)| {
            let mut next = self.clone();
            next.piece_moved(&moved);
            next.finish(winner, reason, now)
        });
        Ok((Some(moved), finished))
    }

    #[handle]
    fn resign(&self, cmd: Resign, ctx: &Context) -> Result<GameFinished, MatchError> {
        let color = self.playing_seat(&cmd.player)?;
        Ok(self.finish(Some(color.other()), Reason::Resignation, ctx.now()))
    }

    #[handle]
    fn offer_draw(&self, cmd: OfferDraw) -> Result<DrawOffered, MatchError> {
        let color = self.playing_seat(&cmd.player)?;
        match self.draw_offer {
            Some(side) if side == color => Err(MatchError::AlreadyOffered(color)),
            Some(side) => Err(MatchError::OfferStands(side)),
            None => Ok(DrawOffered {
                player: cmd.player,
                color,
            }),
        }
    }

    #[handle]
    fn accept_draw(&self, cmd: AcceptDraw, ctx: &Context) -> Result<GameFinished, MatchError> {
        let color = self.playing_seat(&cmd.player)?;
        if self.draw_offer != Some(color.other()) {
            return Err(MatchError::NoOffer);
        }
        Ok(self.finish(None, Reason::Agreement, ctx.now()))
    }

    #[handle]
    fn decline_draw(&self, cmd: DeclineDraw) -> Result<DrawDeclined, MatchError> {
        let color = self.playing_seat(&cmd.player)?;
        if self.draw_offer != Some(color.other()) {
            return Err(MatchError::NoOffer);
        }
        Ok(DrawDeclined { player: cmd.player })
    }

    #[handle]
    fn flag_fall(&self, cmd: FlagFall, ctx: &Context) -> Option<GameFinished> {
        let now = ctx.now();
        let stale = !self.started
            || self.finished.is_some()
            || cmd.ply as usize != self.moves.len()
            || self.left_ms(self.turn(), now) > 0;
        (!stale).then(|| self.flag_fell(now))
    }

    #[apply]
    fn match_started(&mut self, e: &MatchStarted) {
        self.white = e.white.clone();
        self.black = e.black.clone();
        self.started = true;
        self.clock_ms = e.clock_ms;
        self.white_ms = e.clock_ms;
        self.black_ms = e.clock_ms;
        self.last_at = e.at;
        if let Some(board) = e.from_fen.as_deref().and_then(|fen| fen.parse::<Board>().ok()) {
            self.board = board;
        }
        self.seen = vec![self.board.hash()];
    }

    #[apply]
    fn piece_moved(&mut self, e: &PieceMoved) {
        // The move was judged legal on this board when it was decided.
        if let Ok(mv) = parse_uci_move(&self.board, &e.uci) {
            let _ = self.board.try_play(mv);
        }
        if self.board.halfmove_clock() == 0 {
            self.seen.clear();
        }
        self.seen.push(self.board.hash());
        self.moves.push(e.uci.clone());
        self.san.push(e.san.clone());
        self.white_ms = e.white_ms;
        self.black_ms = e.black_ms;
        self.last_at = e.at;
        self.draw_offer = None;
    }

    #[apply]
    fn draw_offered(&mut self, e: &DrawOffered) {
        self.draw_offer = Some(e.color);
    }

    #[apply]
    fn draw_declined(&mut self, _e: &DrawDeclined) {
        self.draw_offer = None;
    }

    #[apply]
    fn game_finished(&mut self, e: &GameFinished) {
        self.white_ms = e.white_ms;
        self.black_ms = e.black_ms;
        self.last_at = e.at;
        self.draw_offer = None;
        self.finished = Some((e.result, e.reason));
    }
}
