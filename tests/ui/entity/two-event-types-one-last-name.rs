use factum::prelude::*;

mod a {
    use serde::{Deserialize, Serialize};

    #[derive(factum::Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(name = "a.noted")]
    pub struct Noted {
        pub text: String,
    }
}

mod b {
    use serde::{Deserialize, Serialize};

    #[derive(factum::Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[event(name = "b.noted")]
    pub struct Noted {
        pub text: String,
    }
}

#[derive(Clone, Debug)]
pub struct Note {
    pub text: String,
}

#[derive(Default, Clone, Debug)]
pub struct Notebook {
    notes: Vec<String>,
}

#[entity]
impl Notebook {
    #[handle]
    fn note(&self, cmd: Note) -> a::Noted {
        a::Noted { text: cmd.text }
    }
    #[apply]
    fn noted_a(&mut self, e: &a::Noted) {
        self.notes.push(e.text.clone());
    }

    #[apply]
    fn noted_b(&mut self, e: &b::Noted) {
        self.notes.push(e.text.clone());
    }
}

fn main() {}
