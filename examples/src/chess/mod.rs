//! The flagship: the seed talk's closing demo, akka-chess, as an event-sourced
//! service on factum, with akka-chess's defects fixed and a game clock, resign
//! and draw offers added.
//!
//! - entities: [`player::Player`], [`matches::Match`] (rules by cozy-chess),
//!   [`lobby::Lobby`] (one per join code);
//! - a workflow: [`pairing::Pairing`] (wait for a second player, or expire);
//! - consumers: [`clock::GameClock`] (the flag-fall timers), [`scoring::Scoring`];
//! - views: [`views::MatchSummary`], [`views::ArchivedMatch`], [`views::Standing`];
//! - a producer: [`feed`] (match events to NATS JetStream for spectators);
//! - the service: [`service::Chess`] (the operations) and [`http`] (axum, the
//!   JSON API, live updates over server-sent events, and the web page).

pub mod clock;
pub mod feed;
pub mod games;
pub mod http;
pub mod lobby;
pub mod matches;
pub mod pairing;
pub mod player;
pub mod scoring;
pub mod service;
pub mod views;
