//! The entity the timer tests (and the `timer_child` process) schedule
//! commands for: a meter that counts ticks and remembers their labels in
//! order, so a tick fired twice, lost, or out of due order shows.

use factum::prelude::*;
use serde::{Deserialize, Serialize};

/// Count `by`, remembering `label`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    /// How much.
    pub by: u64,
    /// Which tick, for order checks.
    pub label: String,
}

/// Always refused: a timer whose command is rejected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refuse {
    /// The reason given back.
    pub reason: String,
}

/// A tick was counted.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "meter.ticked")]
pub struct Ticked {
    /// How much.
    pub by: u64,
    /// Which tick.
    pub label: String,
}

/// Why a meter refuses a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeterError {
    /// The command asked to be refused.
    #[error("refused: {0}")]
    Refused(String),
}

/// The sum of the ticks and their labels, in the order they were counted.
#[derive(Default, Clone, Debug, PartialEq)]
pub struct Meter {
    /// The sum of `by`.
    pub total: u64,
    /// Every label, in order.
    pub labels: Vec<String>,
}

#[entity(name = "meter")]
impl Meter {
    #[handle]
    fn tick(&self, cmd: Tick) -> Ticked {
        Ticked {
            by: cmd.by,
            label: cmd.label,
        }
    }

    #[handle]
    fn refuse(&self, cmd: Refuse) -> Result<(), MeterError> {
        Err(MeterError::Refused(cmd.reason))
    }

    #[apply]
    fn ticked(&mut self, e: &Ticked) {
        self.total += e.by;
        self.labels.push(e.label.clone());
    }
}

/// A tick labelled `label`, of 1.
pub fn tick(label: &str) -> Tick {
    Tick {
        by: 1,
        label: label.to_owned(),
    }
}
