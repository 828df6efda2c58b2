//! `rebuild-view`, `diff-view`, `swap-view`: regenerate a view with this
//! program's logic beside the live table, compare, then make it live.

use factum::audit::{self, TableSummary, cell};

use crate::output::{Progress, Table};
use crate::{CliError, Ctx};

/// `rebuild-view` arguments.
#[derive(Debug, clap::Args)]
pub struct RebuildArgs {
    /// The view's name (see `catalogue`).
    pub name: String,
    /// The version of the view's logic expected in this program; refused if it has another.
    #[arg(long, value_name = "V")]
    pub version: Option<u32>,
    /// Events folded per view transaction.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub batch: usize,
}

/// The arguments of `diff-view`.
#[derive(Debug, clap::Args)]
pub struct NameArgs {
    /// The view's name (see `catalogue`).
    pub name: String,
}

/// The arguments of `swap-view`.
#[derive(Debug, clap::Args)]
pub struct SwapArgs {
    /// The view's name (see `catalogue`).
    pub name: String,
    /// Events folded per view transaction while catching up.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub batch: usize,
}

fn table(t: &TableSummary) -> String {
    format!(
        "v{} build {} ({}, at position {})",
        t.version, t.build, t.state, t.position
    )
}

pub(crate) async fn rebuild(args: RebuildArgs, ctx: &Ctx) -> Result<(), CliError> {
    if let Some(want) = args.version {
        let have = factum::view::registered()
            .find(|r| r.name == args.name)
            .map(|r| r.version);
        if have.is_some_and(|v| v != want) {
            return Err(CliError::Usage(format!(
                "this program has version {} of view {}, not {want}; run the binary built with that logic",
                have.unwrap_or_default(),
                args.name
            )));
        }
    }
    let views = ctx.views().await?;
    let progress = Progress::new("rebuilding");
    let built = audit::rebuild_view(
        ctx.store().clone(),
        views,
        &args.name,
        args.batch,
        Some(progress.callback()),
    )
    .await?;
    drop(progress);
    if ctx.out.is_json() {
        return ctx.out.json(&built);
    }
    ctx.out.line(format!(
        "{}: built {} beside the live table; queries still read the live one. `diff-view {0}` compares, `swap-view {0}` makes it live",
        args.name,
        table(&built)
    ))?;
    Ok(())
}

pub(crate) async fn diff(args: NameArgs, ctx: &Ctx) -> Result<(), CliError> {
    let views = ctx.views().await?;
    let diff = audit::diff_view(views, &args.name).await?;
    if ctx.out.is_json() {
        return ctx.out.json(&diff);
    }
    ctx.out.line(format!(
        "{}: live {} against rebuilt {}: {} row(s) differ, {} unchanged",
        diff.view,
        table(&diff.live),
        table(&diff.rebuilt),
        diff.rows.len(),
        diff.unchanged
    ))?;
    let mut rows = Table::new(&["key", "change", "field", ">live", ">rebuilt"]);
    for row in &diff.rows {
        for f in &row.fields {
            rows.row(vec![
                row.key.clone(),
                serde_json::to_value(row.change)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                f.path.clone(),
                cell(f.before.as_ref()),
                cell(f.after.as_ref()),
            ]);
        }
    }
    if !rows.is_empty() {
        rows.print(&ctx.out, "  ")?;
    }
    Ok(())
}

pub(crate) async fn swap(args: SwapArgs, ctx: &Ctx) -> Result<(), CliError> {
    let views = ctx.views().await?;
    let progress = Progress::new("catching up");
    let live = audit::swap_view(
        ctx.store().clone(),
        views,
        &args.name,
        args.batch,
        Some(progress.callback()),
    )
    .await?;
    drop(progress);
    if ctx.out.is_json() {
        return ctx.out.json(&live);
    }
    ctx.out.line(format!(
        "{}: {} is live; the old table is retired",
        args.name,
        table(&live)
    ))?;
    Ok(())
}
