use factum::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Booked {
    pub guest: String,
}

#[derive(Clone, Debug)]
pub struct Book {
    pub guest: String,
}

#[derive(Clone, Debug)]
pub struct CheckIn {
    pub guest: String,
}

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("the hotel is full")]
pub struct Full;

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("no such guest")]
pub struct UnknownGuest;

#[derive(Default, Clone, Debug)]
pub struct Hotel {
    guests: Vec<String>,
}

#[entity]
impl Hotel {
    #[handle]
    fn book(&self, cmd: Book) -> Result<Booked, Full> {
        if self.guests.len() >= 10 {
            return Err(Full);
        }
        Ok(Booked { guest: cmd.guest })
    }

    #[handle]
    fn check_in(&self, cmd: CheckIn) -> Result<(), UnknownGuest> {
        if !self.guests.contains(&cmd.guest) {
            return Err(UnknownGuest);
        }
        Ok(())
    }

    #[apply]
    fn booked(&mut self, e: &Booked) {
        self.guests.push(e.guest.clone());
    }
}

fn main() {}
