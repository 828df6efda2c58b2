//! Fault injection for the test kit's simulation (`testkit::Simulation`, above this layer):
//! the sites where the workflow and timer runners ask whether to crash, do a
//! thing twice or fail, and the trait the simulation answers through.
//!
//! Nothing is installed outside a simulation: every site then costs one
//! `Option` check. The runners act on the answer; the plan (which site gets
//! which fault, and the record of it) is the simulation's.

/// A place in the durable paths where a fault can be injected.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Site<'a> {
    /// A step's attempt is about to run (nothing of it done yet).
    StepStart(Attempt<'a>),
    /// The step's `call`-th entity call (from 0) has returned: its effect is
    /// committed, the rest of the step not run.
    StepCall(Attempt<'a>, u64),
    /// The step ran (its effects committed); its result is not recorded yet.
    StepAfter(Attempt<'a>),
    /// A timer's command was sent; its firing is not recorded yet.
    TimerFired {
        /// The timer's name.
        name: &'a str,
    },
}

/// One attempt of one step of one instance.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attempt<'a> {
    pub(crate) workflow: &'static str,
    pub(crate) id: &'a str,
    pub(crate) step: &'a str,
    pub(crate) seq: u64,
    pub(crate) attempt: u32,
}

/// What happens at a site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Injection {
    /// Go on.
    None,
    /// The process dies here: the caller stops for good (it waits forever;
    /// the app is dropped and its tasks aborted), so nothing after the site
    /// reaches the store.
    Crash,
    /// Deliver again: a step's call re-sent under its command id, a step run
    /// a second time before its result is recorded, a timer's command re-sent.
    Duplicate,
    /// The step's attempt fails (before it ran, or after its effects).
    Fail,
}

/// Decides the fault at each site (the simulation's plan).
pub(crate) trait Faults: Send + Sync + 'static {
    /// The fault at `site`.
    fn at(&self, site: &Site<'_>) -> Injection;
}

/// The installed plan's answer at `site` (`Injection::None` without one).
pub(crate) fn at(faults: Option<&std::sync::Arc<dyn Faults>>, site: Site<'_>) -> Injection {
    faults.map_or(Injection::None, |f| f.at(&site))
}

/// What a crashed task does: never go on.
pub(crate) async fn halt() {
    std::future::pending::<()>().await
}
