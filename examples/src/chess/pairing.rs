//! Pairing, a workflow: a pending match waits for its second player under a
//! join code, then starts the match and seats both players; nobody joining
//! within the time-to-live expires the lobby.
//!
//! The wait is the workflow's pause with a timeout (a durable timer the
//! workflow owns), so an expiry survives restarts; a join after the expiry is
//! refused because the instance no longer waits, never half-applied. akka-chess
//! cancelled its expiry timer under another name than it scheduled it with,
//! and scheduled it even when the create was rejected; here there is no name
//! to get wrong, and a refused start schedules nothing.

use std::time::Duration;

use factum::prelude::*;
use factum::workflow::WorkflowRejection;
use serde::{Deserialize, Serialize};

use super::lobby::{ExpireLobby, JoinLobby, Lobby, OpenLobby};
use super::matches::{Color, Match, StartMatch};
use super::player::{Player, TakeSeat};

/// How long a lobby waits for a second player by default (as akka-chess).
pub const LOBBY_TTL: Duration = Duration::from_secs(600);

/// Open a lobby: the pairing instance's id is the join code.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpenPairing {
    /// The waiting player (plays white).
    pub host: String,
    /// Each side's time, in milliseconds.
    pub clock_ms: u64,
    /// How long to wait for a second player, in milliseconds.
    pub ttl_ms: u64,
}

/// A second player joins (a signal).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Join {
    /// The joining player (plays black).
    pub guest: String,
}

/// Why a pairing refused to start or a join.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PairingError {
    /// No host.
    #[error("a lobby needs a host player")]
    NoHost,
    /// No time.
    #[error("a lobby needs time on the clock and a time to wait, got {clock_ms} ms and {ttl_ms} ms")]
    NoTime {
        /// The clock.
        clock_ms: u64,
        /// The wait.
        ttl_ms: u64,
    },
    /// The host tried to join its own lobby.
    #[error("player `{0}` opened this lobby and cannot join it")]
    OwnLobby(String),
}

/// What a refused start or join of a pairing looks like.
pub type PairingRejection = WorkflowRejection<PairingError>;

/// How a pairing came out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PairingOutcome {
    /// Waiting.
    #[default]
    Waiting,
    /// Both seated, the match started.
    Paired,
    /// Nobody came in time.
    Expired,
}

/// A pairing's state.
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pairing {
    /// The waiting player.
    pub host: String,
    /// The joined player.
    pub guest: Option<String>,
    /// Each side's time, in milliseconds.
    pub clock_ms: u64,
    /// How long to wait, in milliseconds.
    pub ttl_ms: u64,
    /// The match, once paired.
    pub match_id: Option<String>,
    /// How it came out.
    pub outcome: PairingOutcome,
}

#[workflow(name = "pairing")]
impl Pairing {
    #[start]
    fn start(&self, cmd: OpenPairing) -> Result<Then<Self>, PairingError> {
        if cmd.host.is_empty() {
            return Err(PairingError::NoHost);
        }
        if cmd.clock_ms == 0 || cmd.ttl_ms == 0 {
            return Err(PairingError::NoTime {
                clock_ms: cmd.clock_ms,
                ttl_ms: cmd.ttl_ms,
            });
        }
        let state = Pairing {
            host: cmd.host,
            clock_ms: cmd.clock_ms,
            ttl_ms: cmd.ttl_ms,
            ..Pairing::default()
        };
        Ok(Then::to(Self::open, ()).with_state(state))
    }

    #[signal]
    fn join(&self, cmd: Join) -> Result<Then<Self>, PairingError> {
        if cmd.guest == self.host {
            return Err(PairingError::OwnLobby(cmd.guest));
        }
        Ok(Then::to(Self::pair, cmd.guest))
    }

    /// Records the pending match under its code, then waits for a join.
    #[step(max_retries = 5, backoff = "1s")]
    async fn open(&self, ctx: &StepContext) -> Result<Then<Self>, CommandError<super::lobby::LobbyError>> {
        let code = ctx.workflow_id().to_owned();
        ctx.send::<Lobby>(
            &code,
            OpenLobby {
                host: self.host.clone(),
            },
        )
        .await?;
        Ok(Then::pause_for(
            Duration::from_millis(self.ttl_ms),
            Self::expire,
            (),
        ))
    }

    /// Seats the guest, starts the match (the code is its id) and tells both players.
    #[step(max_retries = 5, backoff = "1s")]
    async fn pair(&self, ctx: &StepContext, guest: String) -> Result<Then<Self>, String> {
        let code = ctx.workflow_id().to_owned();
        let join = JoinLobby {
            guest: guest.clone(),
            match_id: code.clone(),
        };
        ctx.send::<Lobby>(&code, join).await.map_err(|e| e.to_string())?;
        let start = StartMatch {
            white: self.host.clone(),
            black: guest.clone(),
            clock_ms: self.clock_ms,
            from_fen: None,
        };
        ctx.send::<Match>(&code, start).await.map_err(|e| e.to_string())?;
        for (player, color, opponent) in [
            (&self.host, Color::White, &guest),
            (&guest, Color::Black, &self.host),
        ] {
            let seat = TakeSeat {
                match_id: code.clone(),
                color,
                opponent: opponent.clone(),
            };
            ctx.send::<Player>(player, seat)
                .await
                .map_err(|e| e.to_string())?;
        }
        let state = Pairing {
            guest: Some(guest),
            match_id: Some(code),
            outcome: PairingOutcome::Paired,
            ..self.clone()
        };
        Ok(Then::end().with_state(state))
    }

    /// Nobody joined in time: the lobby expires.
    #[step(max_retries = 5, backoff = "1s")]
    async fn expire(&self, ctx: &StepContext) -> Result<Then<Self>, CommandError<super::lobby::LobbyError>> {
        let code = ctx.workflow_id().to_owned();
        ctx.send::<Lobby>(&code, ExpireLobby).await?;
        let state = Pairing {
            outcome: PairingOutcome::Expired,
            ..self.clone()
        };
        Ok(Then::end().with_state(state))
    }
}
