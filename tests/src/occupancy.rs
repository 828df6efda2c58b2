//! A hotel's occupancy by night, for the multi-key view tests: one booking
//! event covers a whole stay, and the view keeps one row per night
//! (`#[on(keys = e.nights())]`), never one event per night.

use std::collections::BTreeMap;

use factum::prelude::*;
use factum::store::EventStore;
use serde::{Deserialize, Serialize};

use crate::views::append_many;

/// The row key of the `day`-th night of 2027 (1-based): an ISO 8601 ordinal
/// date, `2027-064`, which sorts in calendar order.
pub fn night(day: u32) -> String {
    format!("2027-{day:03}")
}

/// A room was booked for `nights` nights from the night `first`.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "test.stay_booked")]
pub struct StayBooked {
    /// The room number.
    pub room: u32,
    /// How many guests.
    pub guests: u32,
    /// The first night, a day of 2027.
    pub first: u32,
    /// How many nights.
    pub nights: u32,
}

/// A booking was cancelled; it says which nights it gives back.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "test.stay_cancelled")]
pub struct StayCancelled {
    /// The room number.
    pub room: u32,
    /// How many guests it had.
    pub guests: u32,
    /// The first night.
    pub first: u32,
    /// How many nights.
    pub nights: u32,
}

/// The nights `first .. first + nights` as row keys.
fn nights(first: u32, count: u32) -> impl Iterator<Item = String> {
    (first..first + count).map(night)
}

impl StayBooked {
    /// The row key of each night of the stay.
    pub fn nights(&self) -> impl Iterator<Item = String> {
        nights(self.first, self.nights)
    }
}

impl StayCancelled {
    /// The row key of each night given back.
    pub fn nights(&self) -> impl Iterator<Item = String> {
        nights(self.first, self.nights)
    }
}

/// One row per night: rooms taken and guests staying.
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NightOccupancy {
    /// Rooms booked for the night.
    pub rooms: u64,
    /// Guests staying the night.
    pub guests: u64,
}

#[view(name = "test_occupancy")]
impl NightOccupancy {
    #[on(keys = e.nights())]
    fn booked(&mut self, e: &StayBooked) {
        self.rooms += 1;
        self.guests += u64::from(e.guests);
    }

    #[on(keys = e.nights())]
    fn cancelled(&mut self, e: &StayCancelled) -> ViewOp {
        self.rooms -= 1;
        self.guests -= u64::from(e.guests);
        if self.rooms == 0 {
            ViewOp::Delete
        } else {
            ViewOp::Keep
        }
    }
}

/// The deterministic bookings of the tests: booking `i` (from 0) takes room
/// `i % 50` with `1 + i % 3` guests for `1 + i % 14` nights from day
/// `1 + (i * 37) % 300`; every fifth booking is cancelled right after the next.
pub fn booking(i: u64) -> StayBooked {
    StayBooked {
        room: (i % 50) as u32,
        guests: 1 + (i % 3) as u32,
        first: 1 + ((i * 37) % 300) as u32,
        nights: 1 + (i % 14) as u32,
    }
}

/// Whether booking `i` is cancelled.
pub fn cancelled(i: u64) -> bool {
    i % 5 == 4
}

/// Writes `n` bookings (and their cancellations), each booking a stream of
/// its own (`b{i}`); returns the
/// number of events written.
pub async fn write_bookings(store: &dyn EventStore, n: u64) -> u64 {
    let mut written = 0;
    for i in 0..n {
        let b = booking(i);
        written += 1;
        append_many(store, &format!("b{i}"), 0, std::slice::from_ref(&b)).await;
        if cancelled(i) {
            let c = StayCancelled {
                room: b.room,
                guests: b.guests,
                first: b.first,
                nights: b.nights,
            };
            append_many(store, &format!("b{i}"), 1, &[c]).await;
            written += 1;
        }
    }
    written
}

/// What the occupancy view must hold after `n` bookings: counted night by
/// night, without the view's code.
pub fn expected_occupancy(n: u64) -> BTreeMap<String, NightOccupancy> {
    let mut out: BTreeMap<String, NightOccupancy> = BTreeMap::new();
    for i in (0..n).filter(|&i| !cancelled(i)) {
        let b = booking(i);
        for day in b.first..b.first + b.nights {
            let row = out.entry(night(day)).or_default();
            row.rooms += 1;
            row.guests += u64::from(b.guests);
        }
    }
    out
}

/// One row per booking, indexed by its first night and its room, for the
/// index-range tests. Both are text whose order is the order they stand for:
/// an ISO ordinal date, a zero-padded room number.
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stay {
    /// The first night, as [`night`] spells it.
    pub first: String,
    /// The room, zero-padded to three digits (`"007"`).
    pub room: String,
    /// How many nights.
    pub nights: u32,
}

#[view(name = "test_stays", index = [first, room])]
impl Stay {
    #[on]
    fn booked(&mut self, e: &StayBooked) {
        self.first = night(e.first);
        self.room = format!("{:03}", e.room);
        self.nights = e.nights;
    }

    #[on]
    fn cancelled(&mut self, _e: &StayCancelled) -> ViewOp {
        ViewOp::Delete
    }
}

/// What the stays view must hold after `n` bookings, by stream.
pub fn expected_stays(n: u64) -> BTreeMap<String, Stay> {
    (0..n)
        .filter(|&i| !cancelled(i))
        .map(|i| {
            let b = booking(i);
            let stay = Stay {
                first: night(b.first),
                room: format!("{:03}", b.room),
                nights: b.nights,
            };
            (format!("b{i}"), stay)
        })
        .collect()
}
