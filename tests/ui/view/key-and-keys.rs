use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StayBooked {
    pub room: u32,
    pub nights: Vec<String>,
}

#[derive(Default, Clone, Debug, Serialize, Deserialize)]
pub struct Night {
    rooms: u32,
}

#[view]
impl Night {
    #[on(key = e.room, keys = e.nights.clone())]
    fn booked(&mut self, _e: &StayBooked) {
        self.rooms += 1;
    }
}

fn main() {}
