//! `catalogue`: what this program can read — every registered event type,
//! entity and view.

use crate::output::{Output, Table};
use crate::{CliError, Ctx};

pub(crate) fn run(ctx: &Ctx) -> Result<(), CliError> {
    run_on(&ctx.out)
}

pub(crate) fn run_on(out: &Output) -> Result<(), CliError> {
    let catalogue = factum::audit::catalogue();
    if out.is_json() {
        out.json(&catalogue)?;
        return Ok(out.flush()?);
    }
    out.line("events:")?;
    let mut events = Table::new(&["name", ">version", "upcast", "types"]);
    for e in &catalogue.events {
        events.row(vec![
            e.name.clone(),
            e.version.to_string(),
            e.upcast.clone(),
            e.versions
                .iter()
                .map(|(v, t)| format!("v{v} {t}"))
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    events.print(out, "  ")?;
    out.line("entities (commands marked * are not Deserialize, so what-if cannot read them):")?;
    let mut entities = Table::new(&["name", "type", "events", "commands"]);
    for e in &catalogue.entities {
        entities.row(vec![
            e.name.clone(),
            e.rust_type.clone(),
            e.events.join(", "),
            e.commands
                .iter()
                .map(|(c, ok)| if *ok { c.clone() } else { format!("{c}*") })
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    entities.print(out, "  ")?;
    out.line("views:")?;
    let mut views = Table::new(&["name", ">version", "type", "folds", "indexes"]);
    for v in &catalogue.views {
        views.row(vec![
            v.name.clone(),
            v.version.to_string(),
            v.rust_type.clone(),
            v.events.join(", "),
            v.indexes.join(", "),
        ]);
    }
    views.print(out, "  ")?;
    Ok(out.flush()?)
}
