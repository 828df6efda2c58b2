use factum::prelude::*;

#[entity]
fn account() {}

fn main() {}
