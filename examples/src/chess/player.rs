//! A player: registered once under a name, told of each match it is seated
//! in, and credited with each result once.
//!
//! akka-chess scored a player with a fresh command on every delivery; here a
//! result names its match, and a second result for the same match is refused
//! ([`PlayerError::AlreadyScored`]), beside the consumer's derived command ids.

use std::collections::BTreeSet;

use factum::prelude::*;
use serde::{Deserialize, Serialize};

use super::matches::Color;

/// The longest player name, in characters.
pub const MAX_NAME: usize = 40;

/// Register a player.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Register {
    /// The name shown on the board and the leaderboard.
    pub name: String,
}

/// Tell a player it has a seat in a match (the pairing workflow sends it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TakeSeat {
    /// The match.
    pub match_id: String,
    /// The colour the player plays.
    pub color: Color,
    /// The other player.
    pub opponent: String,
}

/// How a match came out for one player.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The player won.
    Win,
    /// The player lost.
    Loss,
    /// Drawn.
    Draw,
}

/// Credit a player with a finished match (the scoring consumer sends it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordResult {
    /// The match.
    pub match_id: String,
    /// How it came out for this player.
    pub outcome: Outcome,
    /// The other player.
    pub opponent: String,
}

/// The player registered.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "player.registered")]
pub struct PlayerRegistered {
    /// The name.
    pub name: String,
}

/// The player was seated in a match.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "player.seated")]
pub struct Seated {
    /// The match.
    pub match_id: String,
    /// The colour the player plays.
    pub color: Color,
    /// The other player.
    pub opponent: String,
}

/// The player won a match.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "player.match_won")]
pub struct MatchWon {
    /// The match.
    pub match_id: String,
    /// The loser.
    pub opponent: String,
}

/// The player lost a match.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "player.match_lost")]
pub struct MatchLost {
    /// The match.
    pub match_id: String,
    /// The winner.
    pub opponent: String,
}

/// A match of the player's was drawn.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "player.match_drawn")]
pub struct MatchDrawn {
    /// The match.
    pub match_id: String,
    /// The other player.
    pub opponent: String,
}

/// Why a player refused a command.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlayerError {
    /// The name is empty or only spaces.
    #[error("a player name cannot be empty")]
    EmptyName,
    /// The name is longer than [`MAX_NAME`].
    #[error("a player name has at most {MAX_NAME} characters, `{0}` has more")]
    LongName(String),
    /// Registered before.
    #[error("the player is already registered as `{0}`")]
    AlreadyRegistered(String),
    /// Never registered.
    #[error("no player is registered under this id")]
    NotRegistered,
    /// The match was scored for this player before.
    #[error("match {0} was already scored for this player")]
    AlreadyScored(String),
}

/// A player's state.
#[derive(Default, Clone, Debug, PartialEq)]
pub struct Player {
    /// The name; empty until registered.
    pub name: String,
    /// True once registered.
    pub registered: bool,
    /// Matches won.
    pub wins: u32,
    /// Matches lost.
    pub losses: u32,
    /// Matches drawn.
    pub draws: u32,
    /// The matches the player was seated in, in order.
    pub matches: Vec<String>,
    /// The matches already scored.
    scored: BTreeSet<String>,
}

#[entity(name = "player")]
impl Player {
    #[handle]
    fn register(&self, cmd: Register) -> Result<PlayerRegistered, PlayerError> {
        if self.registered {
            return Err(PlayerError::AlreadyRegistered(self.name.clone()));
        }
        let name = cmd.name.trim();
        if name.is_empty() {
            return Err(PlayerError::EmptyName);
        }
        if name.chars().count() > MAX_NAME {
            return Err(PlayerError::LongName(name.to_owned()));
        }
        Ok(PlayerRegistered {
            name: name.to_owned(),
        })
    }

    #[handle]
    fn take_seat(&self, cmd: TakeSeat) -> Result<Option<Seated>, PlayerError> {
        if !self.registered {
            return Err(PlayerError::NotRegistered);
        }
        if self.matches.contains(&cmd.match_id) {
            return Ok(None); // told twice: nothing new
        }
        Ok(Some(Seated {
            match_id: cmd.match_id,
            color: cmd.color,
            opponent: cmd.opponent,
        }))
    }

    #[handle]
    fn record_result(&self, cmd: RecordResult) -> Result<Vec<PlayerEvent>, PlayerError> {
        if !self.registered {
            return Err(PlayerError::NotRegistered);
        }
        if self.scored.contains(&cmd.match_id) {
            return Err(PlayerError::AlreadyScored(cmd.match_id));
        }
        let (match_id, opponent) = (cmd.match_id, cmd.opponent);
        Ok(vec![match cmd.outcome {
            Outcome::Win => MatchWon { match_id, opponent }.into(),
            Outcome::Loss => MatchLost { match_id, opponent }.into(),
            Outcome::Draw => MatchDrawn { match_id, opponent }.into(),
        }])
    }

    #[apply]
    fn registered(&mut self, e: &PlayerRegistered) {
        self.name = e.name.clone();
        self.registered = true;
    }

    #[apply]
    fn seated(&mut self, e: &Seated) {
        self.matches.push(e.match_id.clone());
    }

    #[apply]
    fn won(&mut self, e: &MatchWon) {
        self.wins += 1;
        self.scored.insert(e.match_id.clone());
    }

    #[apply]
    fn lost(&mut self, e: &MatchLost) {
        self.losses += 1;
        self.scored.insert(e.match_id.clone());
    }

    #[apply]
    fn drawn(&mut self, e: &MatchDrawn) {
        self.draws += 1;
        self.scored.insert(e.match_id.clone());
    }
}
