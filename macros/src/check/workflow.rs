//! Structural checks on a `#[workflow]` block, one function per rule: the
//! decisions' and steps' shapes, and the step graph (every transition and
//! failover names a step, every step is reached, no step is a dead end).

use std::collections::{HashSet, VecDeque};

use syn::{FnArg, Ident, ImplItemFn};

use super::{not_generic, type_ident};
use crate::ast::{Decision, Step, Workflow};
use crate::ctxt::Ctxt;

/// Runs every structural check on a workflow impl block.
pub(crate) fn workflow(wf: &Workflow, cx: &Ctxt) {
    if let Some((_, path, _)) = &wf.item.trait_ {
        cx.error_spanned_by(
            path,
            "`#[workflow]` goes on an inherent impl block (`impl Transfer { … }`), not on a trait impl",
        );
        return;
    }
    if wf.ident.is_none() || !wf.item.generics.params.is_empty() {
        cx.error_spanned_by(
            &wf.item.self_ty,
            "`#[workflow]` needs a plain, non-generic named type (`impl Transfer`): its instances are stored under one name and decoded into one type",
        );
    }
    one_start(wf, cx);
    for d in wf.starts.iter().chain(&wf.signals) {
        decision_is_sync(d, cx);
        decision_takes_ref_self(d, cx);
        not_generic(d.method, role(wf, d), cx);
        decision_params(wf, d, cx);
    }
    for s in &wf.steps {
        step_is_async(s, cx);
        step_takes_ref_self(s, cx);
        not_generic(s.method, "step", cx);
        step_params(s, cx);
    }
    transitions_name_steps(wf, cx);
    failovers_name_steps(wf, cx);
    final_steps_name_steps(wf, cx);
    on_timeout_needs_a_timeout(wf, cx);
    every_step_is_reached(wf, cx);
    no_dead_end(wf, cx);
}

fn role(wf: &Workflow, d: &Decision) -> &'static str {
    if wf.starts.iter().any(|s| std::ptr::eq(s.method, d.method)) {
        "start"
    } else {
        "signal"
    }
}

/// An instance starts one way: the start command is the type
/// `app.workflow::<W>(id).start(cmd)` takes.
fn one_start(wf: &Workflow, cx: &Ctxt) {
    match &wf.starts[..] {
        [] => cx.error_spanned_by(
            &wf.item.self_ty,
            "a workflow needs one `#[start] fn start(&self, cmd: StartCommand) -> Then<Self>` (or `Result<Then<Self>, E>`): the decision that starts an instance",
        ),
        [_] => {}
        [_, rest @ ..] => {
            for extra in rest {
                cx.error_spanned_by(
                    &extra.method.sig.ident,
                    "a workflow has one `#[start]`: start with one command type (an enum, if there are several ways to start)",
                );
            }
        }
    }
}

/// Decisions are pure, like `#[handle]`: they may run again on a retried
/// command, so they decide from the state and the command alone, now.
fn decision_is_sync(d: &Decision, cx: &Ctxt) {
    if let Some(asyncness) = &d.method.sig.asyncness {
        cx.error_spanned_by(
            asyncness,
            "a workflow decision (`#[start]`, `#[signal]`) is pure and synchronous, like `#[handle]`: make it a plain `fn`, and do async work in a `#[step]`",
        );
    }
}

/// A decision changes the state only through the move it returns (`Then::…
/// .with_state(…)`), which is recorded as an event.
fn decision_takes_ref_self(d: &Decision, cx: &Ctxt) {
    receiver_is_ref(
        d.method,
        "a workflow decision takes `&self`: return the new state with `Then::…(…).with_state(new)`, which is recorded as an event",
        cx,
    );
}

/// One command, then optionally the `&Context` (for `ctx.now()`).
fn decision_params(wf: &Workflow, d: &Decision, cx: &Ctxt) {
    let sig = &d.method.sig;
    match d.params.len() {
        0 => cx.error_spanned_by(
            sig,
            format!(
                "a `#[{}]` decision takes its command after `&self`: `fn {}(&self, cmd: Command) -> Then<Self>`",
                role(wf, d),
                sig.ident
            ),
        ),
        1 | 2 => {
            if let Some(cmd) = d.params.first()
                && matches!(&*cmd.ty, syn::Type::Reference(_))
            {
                cx.error_spanned_by(&cmd.ty, "a decision takes its command by value: drop the `&`");
            }
            if d.role_is_signal(wf) && d.command().and_then(type_ident).is_none() {
                cx.error_spanned_by(
                    &d.params[0].ty,
                    "a signal's command is a named type (`Accept`): it names the variant of the generated signal enum",
                );
            }
        }
        _ => cx.error_spanned_by(
            d.params[2],
            "a decision takes the command and optionally `ctx: &Context`, nothing more",
        ),
    }
}

impl Decision<'_> {
    fn role_is_signal(&self, wf: &Workflow) -> bool {
        role(wf, self) == "signal"
    }
}

/// Steps are where the waiting happens (entity calls, outside services).
fn step_is_async(s: &Step, cx: &Ctxt) {
    if s.method.sig.asyncness.is_none() {
        cx.error_spanned_by(
            s.method.sig.fn_token,
            "a `#[step]` is an `async fn`: write `async fn step(&self, ctx: &StepContext, input: Input) -> Then<Self>`",
        );
    }
}

/// A step runs against a copy of the recorded state; a change made in place
/// would be lost at the next restart. The new state is part of the move.
fn step_takes_ref_self(s: &Step, cx: &Ctxt) {
    receiver_is_ref(
        s.method,
        "a `#[step]` takes `&self`: a change made in place would not be recorded; return it with `Then::…(…).with_state(new)`, which is recorded as an event",
        cx,
    );
}

/// `ctx: &StepContext`, then optionally the input.
fn step_params(s: &Step, cx: &Ctxt) {
    let sig = &s.method.sig;
    match s.params.len() {
        0 => cx.error_spanned_by(
            sig,
            format!(
                "a `#[step]` takes its context after `&self`: `async fn {}(&self, ctx: &StepContext, input: Input)` (the input is optional)",
                sig.ident
            ),
        ),
        1 | 2 => {
            if !matches!(&*s.params[0].ty, syn::Type::Reference(r) if r.mutability.is_none()) {
                cx.error_spanned_by(&s.params[0].ty, "a step's first parameter is its context: `ctx: &StepContext`");
            }
        }
        _ => cx.error_spanned_by(
            s.params[2],
            "a step takes its context and optionally one input; put several values in one input struct",
        ),
    }
}

fn receiver_is_ref(method: &ImplItemFn, message: &str, cx: &Ctxt) {
    match method.sig.inputs.first() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
        Some(FnArg::Receiver(r)) => cx.error_spanned_by(r, message),
        _ => cx.error_spanned_by(&method.sig, message),
    }
}

/// A transition names its target as a method path, so a typo or a removed
/// step is a compile error here rather than an instance stuck at run time.
fn transitions_name_steps(wf: &Workflow, cx: &Ctxt) {
    let targets = wf
        .starts
        .iter()
        .chain(&wf.signals)
        .flat_map(|d| &d.targets)
        .chain(wf.steps.iter().flat_map(|s| &s.targets));
    for target in targets {
        if wf.step(target).is_none() {
            cx.error_spanned_by(
                target,
                format!(
                    "`{target}` is not a `#[step]` of this workflow, so no transition can go there: {}",
                    known_steps(wf)
                ),
            );
        }
    }
}

/// The failover step is entered when a step's retries are spent; naming a
/// step that does not exist would fail the instance at the worst moment.
fn failovers_name_steps(wf: &Workflow, cx: &Ctxt) {
    for s in &wf.steps {
        if let Some(failover) = &s.options.failover {
            if wf.step(failover).is_none() {
                cx.error_spanned_by(
                    failover,
                    format!(
                        "`failover = {failover}` names no `#[step]` of this workflow: {}",
                        known_steps(wf)
                    ),
                );
            } else if *failover == s.method.sig.ident {
                cx.error_spanned_by(
                    failover,
                    "a step cannot fail over to itself: raise `max_retries` instead, or name a compensating step",
                );
            }
        }
    }
}

/// `on_timeout` and `on_cancel` are entered when the instance is already in
/// trouble; naming something that is not a step would strand it there.
fn final_steps_name_steps(wf: &Workflow, cx: &Ctxt) {
    for (key, target) in [
        ("on_timeout", &wf.args.on_timeout),
        ("on_cancel", &wf.args.on_cancel),
    ] {
        if let Some(target) = target
            && wf.step(target).is_none()
        {
            cx.error_spanned_by(
                target,
                format!(
                    "`{key} = {target}` names no `#[step]` of this workflow: {}",
                    known_steps(wf)
                ),
            );
        }
    }
}

/// A final step for a timeout that is never set would never run: the
/// timeout is what enters it.
fn on_timeout_needs_a_timeout(wf: &Workflow, cx: &Ctxt) {
    if let (Some(target), None) = (&wf.args.on_timeout, &wf.args.timeout) {
        cx.error_spanned_by(
            target,
            format!(
                "`on_timeout = {target}` without a `timeout`: say how long an instance may run, `#[workflow(timeout = \"15m\", on_timeout = {target})]`"
            ),
        );
    }
}

fn known_steps(wf: &Workflow) -> String {
    let names: Vec<String> = wf
        .steps
        .iter()
        .map(|s| format!("`{}`", s.method.sig.ident))
        .collect();
    if names.is_empty() {
        "it declares no steps; add `#[step] async fn …`".to_owned()
    } else {
        format!("its steps are {}", names.join(", "))
    }
}

/// A step nothing transitions to (from the start, a signal, another reached
/// step, or as a failover) is dead code that looks alive.
fn every_step_is_reached(wf: &Workflow, cx: &Ctxt) {
    let mut reached: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<&Ident> = wf
        .starts
        .iter()
        .chain(&wf.signals)
        .flat_map(|d| &d.targets)
        .chain(&wf.args.on_timeout)
        .chain(&wf.args.on_cancel)
        .collect();
    while let Some(next) = queue.pop_front() {
        let Some(step) = wf.step(next) else { continue };
        if !reached.insert(next.to_string()) {
            continue;
        }
        queue.extend(&step.targets);
        queue.extend(&step.options.failover);
    }
    for s in &wf.steps {
        let ident = &s.method.sig.ident;
        if !reached.contains(&ident.to_string()) {
            cx.error_spanned_by(
                ident,
                format!(
                    "step `{ident}` is unreachable: neither the `#[start]`, a `#[signal]`, a reached step (`Then::to(Self::{ident}, …)`, `Then::pause_for(…, Self::{ident}, …)`), a `failover = {ident}` nor the workflow's `on_timeout`/`on_cancel` leads to it"
                ),
            );
        }
    }
}

/// Every step must be able to move on: a step whose body names no move
/// (`Then::to`, `pause`, `pause_for`, `end`, `fail`) would leave its
/// instances in it for ever.
fn no_dead_end(wf: &Workflow, cx: &Ctxt) {
    for s in &wf.steps {
        if !s.moves {
            let ident = &s.method.sig.ident;
            cx.error_spanned_by(
                ident,
                format!(
                    "step `{ident}` is a dead end: its body names no move, so an instance could never leave it. Return `Then::to(Self::next, input)`, `Then::pause()`, `Then::pause_for(…)`, `Then::end()` or `Then::fail(reason)` (written in the step's body)"
                ),
            );
        }
    }
}
