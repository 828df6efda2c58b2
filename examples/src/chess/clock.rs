//! The game clock: a consumer of match events that keeps one durable timer
//! per match, due when the side to move runs out of time.
//!
//! Each move replaces the timer (one name per match, [`timer_name`], used to
//! schedule and to cancel it); the end of the game cancels it. Timers are
//! stored with the events and fire after a restart, so a flag falls on time
//! even when nobody moves and the process was down meanwhile. The firing is a
//! [`FlagFall`] command the match judges against its own clock, so a stale
//! or late firing changes nothing. Timers are set only from stored events: a
//! refused command never schedules one.

use std::time::Duration;

use factum::TimerError;
use factum::prelude::*;

use super::matches::{Color, FlagFall, GameFinished, Match, MatchStarted, PieceMoved};

/// The name of a match's clock timer: the one name it is scheduled and cancelled under.
pub fn timer_name(match_id: &str) -> String {
    format!("chess.clock:{match_id}")
}

/// Keeps each match's flag-fall timer.
#[derive(Clone, Copy, Debug, Default)]
pub struct GameClock;

#[consumer(name = "chess_clock")]
impl GameClock {
    #[on]
    async fn started(&self, e: &MatchStarted, ctx: &mut ConsumerContext) -> Result<(), TimerError> {
        let id = ctx.stream_id().to_owned();
        let due = e.at + Duration::from_millis(e.clock_ms);
        ctx.schedule::<Match, _>(&timer_name(&id), &id, due, FlagFall { ply: 0 })
            .await
    }

    #[on]
    async fn moved(&self, e: &PieceMoved, ctx: &mut ConsumerContext) -> Result<(), TimerError> {
        let id = ctx.stream_id().to_owned();
        let left = match e.color.other() {
            Color::White => e.white_ms,
            Color::Black => e.black_ms,
        };
        let due = e.at + Duration::from_millis(left);
        ctx.schedule::<Match, _>(&timer_name(&id), &id, due, FlagFall { ply: e.ply })
            .await
    }

    #[on]
    async fn finished(&self, _e: &GameFinished, ctx: &mut ConsumerContext) -> Result<(), TimerError> {
        let id = ctx.stream_id().to_owned();
        ctx.cancel_timer(&timer_name(&id)).await.map(|_| ())
    }
}
