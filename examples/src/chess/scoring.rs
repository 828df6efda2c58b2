//! Scoring, a consumer: a finished match credits both players once.
//!
//! akka-chess compared player ids as strings with `==` in a way that scored
//! every decisive game as a win for black, sent its score commands fire and
//! forget (a failure was lost), and double-counted on redelivery. Here the
//! outcome comes from the result's winning *side*; each send's command id is
//! derived from the event, so a redelivery scores once (and the player refuses
//! a second result for a match anyway); a failed send is returned, retried
//! with backoff, then parked as a dead letter with its error.

use factum::prelude::*;

use super::matches::{Color, GameFinished};
use super::player::{Outcome, Player, PlayerError, RecordResult};

/// Credits the players of each finished match.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scoring;

/// How a game came out for the player of `color`.
pub fn outcome_for(e: &GameFinished, color: Color) -> Outcome {
    match e.result.winner() {
        None => Outcome::Draw,
        Some(winner) if winner == color => Outcome::Win,
        Some(_) => Outcome::Loss,
    }
}

#[consumer(name = "chess_scoring", max_attempts = 5, backoff_ms = 200)]
impl Scoring {
    #[on]
    async fn finished(
        &self,
        e: &GameFinished,
        ctx: &mut ConsumerContext,
    ) -> Result<(), CommandError<PlayerError>> {
        let match_id = ctx.stream_id().to_owned();
        for (player, color, opponent) in [
            (&e.white, Color::White, &e.black),
            (&e.black, Color::Black, &e.white),
        ] {
            let result = RecordResult {
                match_id: match_id.clone(),
                outcome: outcome_for(e, color),
                opponent: opponent.clone(),
            };
            match ctx.send::<Player>(player, result).await {
                Ok(_) | Err(CommandError::Rejected(PlayerError::AlreadyScored(_))) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }
}
