// The event (and the meta) read only by the key expression are used: no
// unused-variable warning may point at the handler.
#![deny(unused_variables)]

use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RoomNightBooked {
    pub room: u32,
    pub nights: u32,
}

#[derive(Default, Clone, Debug, Serialize, Deserialize)]
pub struct RoomBookings {
    bookings: u32,
}

#[view(name = "room_bookings")]
impl RoomBookings {
    #[on(key = e.room)]
    fn booked(&mut self, e: &RoomNightBooked) {
        self.bookings += 1;
    }
}

#[derive(Default, Clone, Debug, Serialize, Deserialize)]
pub struct StreamNights {
    nights: u32,
}

#[view(name = "stream_nights")]
impl StreamNights {
    #[on(keys = (0..booking.nights).map(|n| format!("{}-{n}", meta.stream_id)))]
    fn booked(&mut self, booking: &RoomNightBooked, meta: &EventMeta) {
        self.nights += 1;
    }
}

fn main() {}
