//! Forbidden names inside string literals, format strings and comments are text,
//! not calls: `SystemTime::now()`, `rand::random()`, `println!`.

use serde::{Deserialize, Serialize};

#[derive(factum::Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Noted {
    pub text: String,
}

#[derive(Clone, Debug)]
pub struct Note;

#[derive(Default, Clone, Debug)]
pub struct Notebook {
    notes: Vec<String>,
}

#[factum::entity]
impl Notebook {
    #[handle]
    fn note(&self, _cmd: Note) -> Noted {
        // SystemTime::now() would read the wall clock here; rand::random() would not replay.
        Noted { text: "never call SystemTime::now() or rand::random() here".to_owned() }
    }

    #[apply]
    fn noted(&mut self, e: &Noted) {
        /* std::fs::write("log", …) and println!("…") belong in a consumer. */
        let line = format!("{} (not std::env::var(\"X\"))", e.text);
        self.notes.push(line);
    }
}

fn main() {}
