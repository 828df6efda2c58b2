//! Lobbies: a pending match waiting for its second player, one entity per
//! join code.
//!
//! akka-chess kept every pending match in one global `LobbyEntity` "main" (a
//! hot spot every player's command queued on) and mutated its map in place in
//! the event handler. Here each code is its own stream: lobbies never
//! contend, and a lobby's history is its own three events at most.

use factum::prelude::*;
use serde::{Deserialize, Serialize};

/// Open a lobby under its code (the pairing workflow sends it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpenLobby {
    /// The player waiting (plays white).
    pub host: String,
}

/// Seat the second player (the pairing workflow sends it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinLobby {
    /// The joining player (plays black).
    pub guest: String,
    /// The match the two will play.
    pub match_id: String,
}

/// Close a lobby nobody joined in time (the pairing workflow's timeout).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExpireLobby;

/// A pending match was created under a join code.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "lobby.pending_match_created")]
pub struct PendingMatchCreated {
    /// The player waiting.
    pub host: String,
}

/// The second player joined.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "lobby.player_joined")]
pub struct PlayerJoined {
    /// The host.
    pub host: String,
    /// The player who joined.
    pub guest: String,
    /// The match they play.
    pub match_id: String,
}

/// Nobody joined in time.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "lobby.match_expired")]
pub struct LobbyMatchExpired {
    /// The host who waited.
    pub host: String,
}

/// Where a lobby stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LobbyStatus {
    /// No lobby under this code.
    #[default]
    None,
    /// Waiting for a second player.
    Open,
    /// Joined: the match is on.
    Joined,
    /// Nobody came in time.
    Expired,
}

/// Why a lobby refused a command.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LobbyError {
    /// The code is taken.
    #[error("the join code is taken")]
    CodeTaken,
    /// The lobby is not waiting for a player.
    #[error("the lobby is {0:?}, not open")]
    NotOpen(LobbyStatus),
    /// The host tried to join its own lobby.
    #[error("player `{0}` opened this lobby and cannot join it")]
    OwnLobby(String),
}

/// A lobby's state.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct Lobby {
    /// Where it stands.
    pub status: LobbyStatus,
    /// The waiting player.
    pub host: String,
    /// The joined player.
    pub guest: Option<String>,
    /// The match, once joined.
    pub match_id: Option<String>,
}

#[entity(name = "lobby")]
impl Lobby {
    #[handle]
    fn open(&self, cmd: OpenLobby) -> Result<PendingMatchCreated, LobbyError> {
        if self.status != LobbyStatus::None {
            return Err(LobbyError::CodeTaken);
        }
        Ok(PendingMatchCreated { host: cmd.host })
    }

    #[handle]
    fn join(&self, cmd: JoinLobby) -> Result<PlayerJoined, LobbyError> {
        if self.status != LobbyStatus::Open {
            return Err(LobbyError::NotOpen(self.status));
        }
        if cmd.guest == self.host {
            return Err(LobbyError::OwnLobby(cmd.guest));
        }
        Ok(PlayerJoined {
            host: self.host.clone(),
            guest: cmd.guest,
            match_id: cmd.match_id,
        })
    }

    #[handle]
    fn expire(&self, _cmd: ExpireLobby) -> Result<LobbyMatchExpired, LobbyError> {
        if self.status != LobbyStatus::Open {
            return Err(LobbyError::NotOpen(self.status));
        }
        Ok(LobbyMatchExpired {
            host: self.host.clone(),
        })
    }

    #[apply]
    fn created(&mut self, e: &PendingMatchCreated) {
        self.status = LobbyStatus::Open;
        self.host = e.host.clone();
    }

    #[apply]
    fn joined(&mut self, e: &PlayerJoined) {
        self.status = LobbyStatus::Joined;
        self.guest = Some(e.guest.clone());
        self.match_id = Some(e.match_id.clone());
    }

    #[apply]
    fn expired(&mut self, _e: &LobbyMatchExpired) {
        self.status = LobbyStatus::Expired;
    }
}
