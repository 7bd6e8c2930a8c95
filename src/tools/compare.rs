//! Two backends in lockstep: every step's result compared, and the
//! topologies (at the end, or after every step). Linux is the ground truth;
//! a divergence is a bug in the model, or a gap in what it accepts.

use std::time::{Duration, Instant};

use fdlab_model::Topology;
use serde::Serialize;

use super::dump;
use super::image::Image;
use super::restore::{differing, Difference};
use super::run::{ExpectationResult, Failure, Report, Runner};
use crate::backend::api::{Backend, BackendError};
use crate::backend::LinuxBackend;
use crate::lang::print::{call_strace, expectation_text, outcome_text};
use crate::lang::{Scenario, Stmt, StmtKind};

/// Where the two backends disagree.
#[derive(Debug, Clone, Serialize)]
pub struct Divergence {
    pub line: usize,
    /// The call or expectation, or `topology`.
    pub what: String,
    pub model: String,
    pub linux: String,
}

/// Both reports and their divergences.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub model: Report,
    pub linux: Report,
    pub divergences: Vec<Divergence>,
    /// Where the comparison stopped, and why (line, reason): the model
    /// would have had to follow too many states. The rest of the scenario
    /// was not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<(usize, String)>,
    /// The most states the model was followed in at once (1: Linux's
    /// timing never mattered).
    pub states: usize,
    /// With every step compared: the topology after each call (the line
    /// of the call), on which both agreed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub after_step: Vec<(usize, Topology)>,
}

impl Comparison {
    /// Both backends passed every expectation and agree.
    pub fn passed(&self) -> bool {
        self.divergences.is_empty() && self.model.passed() && self.linux.passed()
    }
}

/// The lines of two pretty JSON topologies that differ, `-` model, `+` linux.
pub fn topology_diff(m: &Topology, l: &Topology) -> Option<(String, String)> {
    if m == l {
        return None;
    }
    // Topologies are plain data: serializing cannot fail.
    let a = serde_json::to_string_pretty(m).expect("topology serializes");
    let b = serde_json::to_string_pretty(l).expect("topology serializes");
    let (al, bl): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let common = al.iter().zip(&bl).take_while(|(x, y)| x == y).count();
    let tail = al
        .iter()
        .rev()
        .zip(bl.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let pick = |v: &[&str]| v[common..v.len().saturating_sub(tail).max(common)].join("\n");
    Some((pick(&al), pick(&bl)))
}

/// The settle point: polls Linux's image (tables, open files, what waits in
/// pipes and sockets, files in flight) until it is one of `wants`, the
/// images of the model states still followed once every piece of their
/// deferred work has run (several: when the work ran between two calls
/// can leave different ends, such as a reset the collector's late release
/// left on a socket that was sent to in between); a divergence at `line`,
/// against the first, when Linux's settle deadline passes first. A
/// collector that frees too much or too little cannot hide behind "it has
/// not run yet" here.
///
/// Errors: Linux could not be read.
pub fn settle_point(
    wants: &[Image],
    l: &mut LinuxBackend,
    line: usize,
) -> Result<Option<Divergence>, BackendError> {
    let deadline = l.settle_deadline();
    let root = l.sandbox().to_path_buf();
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let got = dump::from_backend(l, Some(&root))?;
        if wants.iter().any(|w| differing(w, &got).is_empty()) {
            return Ok(None);
        }
        if start.elapsed() >= deadline {
            let Some(want) = wants.first() else {
                return Ok(None);
            };
            let diff = differing(want, &got);
            let side = |f: fn(&Difference) -> &String| {
                diff.iter()
                    .map(|d| format!("{}: {}", d.what, f(d)))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let (m, x) = (side(|d| &d.want), side(|d| &d.got));
            return Ok(Some(Divergence {
                line,
                what: format!(
                    "the settled state (after the kernel's deferred work, waited {deadline:?})"
                ),
                model: m,
                linux: x,
            }));
        }
        // The collector usually runs within a millisecond: poll often
        // first, then less.
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// The most model states the comparison follows at once. A scenario that
/// needs more stops there, and says so in [`Comparison::stopped`].
pub const MAX_STATES: usize = 64;

/// One state the model may be in, and the report of how it got there.
struct State {
    backend: Box<dyn Backend>,
    report: Report,
}

impl State {
    /// The result of the call just run.
    fn step(&self) -> &fdlab_model::Outcome {
        &self.report.steps.last().expect("a call ran").result
    }

    /// The expectation just checked.
    fn expectation(&self) -> &ExpectationResult {
        self.report
            .expectations
            .last()
            .expect("an expectation was checked")
    }
}

/// Every state the model may be in that has answered as Linux did so far.
///
/// Linux finishes some work after the call that started it, from a work
/// queue (the unix garbage collector, a pty's echo), so after a step it may
/// be in any of several states, and which one shows only in later answers.
/// The model backend lists those states (`Backend::later_states`); this set
/// follows all of them and drops each one as soon as it answers otherwise
/// than Linux did. The comparison fails only when none is left, so it
/// accepts exactly the answers that some timing of the work explains.
struct States {
    all: Vec<State>,
    /// The most states followed at once.
    most: usize,
}

impl States {
    /// The one state `model` is in before anything ran.
    fn new(model: Box<dyn Backend>) -> States {
        let report = Report::new(model.name());
        States {
            all: vec![State {
                backend: model,
                report,
            }],
            most: 1,
        }
    }

    /// Runs `stmt` in every state, after adding the states the pending
    /// work may have reached before it ([`States::settle`]). Returns, for
    /// each state, whether the statement added a failure to its report;
    /// `None` if there are more than [`MAX_STATES`] states to follow.
    ///
    /// Errors: what the model could not do.
    fn step(&mut self, stmt: &Stmt) -> Result<Option<Vec<bool>>, BackendError> {
        if !self.settle() {
            return Ok(None);
        }
        let mut failed = Vec::with_capacity(self.all.len());
        for s in &mut self.all {
            let before = s.report.failures.len();
            s.report.exec(s.backend.as_mut(), stmt)?;
            failed.push(s.report.failures.len() > before);
        }
        Ok(Some(failed))
    }

    /// Adds the states that the pending work may have reached by now, one
    /// per state key. Returns false if there are more than [`MAX_STATES`].
    fn settle(&mut self) -> bool {
        let mut next = Vec::new();
        for s in std::mem::take(&mut self.all) {
            let Some(later) = s.backend.later_states() else {
                return false;
            };
            // The report is cloned only for a state that forks off; the
            // state itself stays first (see the end of `run_both`).
            let forks: Vec<State> = later
                .into_iter()
                .map(|backend| State {
                    backend,
                    report: s.report.clone(),
                })
                .collect();
            next.push(s);
            next.extend(forks);
        }
        // Keys cost a topology each: only worth it when there is a choice.
        if next.len() > 1 {
            let mut keys = std::collections::BTreeSet::new();
            next.retain(|s| s.backend.state_key().is_none_or(|k| keys.insert(k)));
        }
        self.all = next;
        self.most = self.most.max(self.all.len());
        self.all.len() <= MAX_STATES
    }

    /// Keeps the states for which `agrees` holds, if any state does, and
    /// returns whether one did (if none did, all are kept, so that later
    /// steps are still compared).
    fn keep(&mut self, agrees: &[bool]) -> bool {
        if !agrees.contains(&true) {
            return false;
        }
        let mut i = 0;
        self.all.retain(|_| {
            i += 1;
            agrees[i - 1]
        });
        true
    }

    /// Keeps the states whose topology is `linux`'s; if none is, the lines
    /// of the first state's topology and of `linux`'s that differ.
    fn match_topology(
        &mut self,
        linux: &Topology,
    ) -> Result<Option<(String, String)>, BackendError> {
        let mut tops = Vec::with_capacity(self.all.len());
        for s in &mut self.all {
            tops.push(s.backend.topology()?);
        }
        let agrees: Vec<bool> = tops.iter().map(|t| t == linux).collect();
        if self.keep(&agrees) {
            return Ok(None);
        }
        Ok(topology_diff(&tops[0], linux))
    }

    /// The different `text`s of the states, joined by "or".
    fn texts(&self, text: impl Fn(&State) -> String) -> String {
        let mut seen: Vec<String> = Vec::new();
        for s in &self.all {
            let t = text(s);
            if !seen.contains(&t) {
                seen.push(t);
            }
        }
        seen.join(" or ")
    }
}

/// An expectation of `scenario` that holds in some of the states Linux may
/// be in and not in others (see `States`): then the scenario passes on
/// Linux only when the kernel's later work happens to come in time, or
/// late. Runs `model` alone, in every state it may be in, and returns the
/// first such expectation (its line, and what it got in a state where it
/// failed); `None` if every expectation holds in all states or in none, or
/// if there were more states than [`MAX_STATES`] to follow.
///
/// Errors: what the model could not do.
pub fn timing_dependent(
    scenario: &Scenario,
    model: Box<dyn Backend>,
) -> Result<Option<Failure>, BackendError> {
    let mut states = States::new(model);
    for stmt in &scenario.stmts {
        let Some(failed) = states.step(stmt)? else {
            return Ok(None);
        };
        if failed.contains(&true) && failed.contains(&false) {
            let i = failed.iter().position(|&f| f).expect("one failed");
            let f = states.all[i].report.failures.last().expect("it failed");
            return Ok(Some(Failure {
                line: f.line,
                message: format!(
                    "{}, when work Linux finishes later (a pty's echo, the unix \
                     garbage collector) comes at another time: the expectation \
                     depends on timing",
                    f.message
                ),
            }));
        }
    }
    Ok(None)
}

/// The images of every state `model` may be in once `scenario` has run
/// and each state's deferred work is done (the images a settle point
/// accepts from Linux, see [`settle_point`]); empty when there were more
/// states than [`MAX_STATES`] to follow.
///
/// Errors: what the model could not do.
pub fn final_images(
    scenario: &Scenario,
    model: Box<dyn Backend>,
) -> Result<Vec<Image>, BackendError> {
    let mut states = States::new(model);
    for stmt in &scenario.stmts {
        if states.step(stmt)?.is_none() {
            return Ok(Vec::new());
        }
    }
    if !states.settle() {
        return Ok(Vec::new());
    }
    Ok(images_of(&states.all))
}

/// The distinct images of the model states `all`.
fn images_of(all: &[State]) -> Vec<Image> {
    let mut images: Vec<Image> = Vec::new();
    for s in all {
        if let Some(w) = s.backend.world() {
            let img = dump::from_model(w);
            if !images.contains(&img) {
                images.push(img);
            }
        }
    }
    images
}

/// Runs `scenario` on `model` and `linux` together, `model` in every state
/// it may be in (see `States`; a `ModelBackend::deferred` lists them).
///
/// Errors: what either backend could not do.
pub fn run_both(
    scenario: &Scenario,
    model: Box<dyn Backend>,
    linux: &mut dyn Backend,
    every_step: bool,
) -> Result<Comparison, BackendError> {
    let mut states = States::new(model);
    let mut l = Runner::new(linux, false);
    let mut after_step = Vec::new();
    let mut divergences = Vec::new();
    let mut stopped = None;
    let too_many = |line| {
        Some((
            line,
            format!("the model would have to follow more than {MAX_STATES} states"),
        ))
    };
    for stmt in &scenario.stmts {
        // The pending work may have run before this statement.
        if states.step(stmt)?.is_none() {
            stopped = too_many(stmt.line);
            break;
        }
        l.exec(stmt)?;
        match &stmt.kind {
            StmtKind::Call { proc, call, .. } => {
                let want = &l.report().steps.last().expect("a step ran").result;
                let agrees: Vec<bool> = states.all.iter().map(|s| s.step() == want).collect();
                if !states.keep(&agrees) {
                    divergences.push(Divergence {
                        line: stmt.line,
                        what: format!("{proc}: {}", call_strace(call)),
                        model: states.texts(|s| outcome_text(s.step())),
                        linux: outcome_text(want),
                    });
                }
            }
            StmtKind::Expect(e) => {
                let want = l.report().expectations.last().expect("checked");
                let agrees: Vec<bool> = states
                    .all
                    .iter()
                    .map(|s| s.expectation().passed == want.passed)
                    .collect();
                if !states.keep(&agrees) {
                    divergences.push(Divergence {
                        line: stmt.line,
                        what: expectation_text(e),
                        model: states.texts(|s| s.expectation().seen.clone()),
                        linux: want.seen.clone(),
                    });
                }
            }
            StmtKind::Spawn { .. } => {}
        }
        if every_step {
            // Linux is observed after the call, and the work may have run
            // in between.
            if !states.settle() {
                stopped = too_many(stmt.line);
                break;
            }
            let tl = l.backend().topology()?;
            if matches!(stmt.kind, StmtKind::Call { .. }) {
                after_step.push((stmt.line, tl.clone()));
            }
            if let Some((a, b)) = states.match_topology(&tl)? {
                divergences.push(Divergence {
                    line: stmt.line,
                    what: "topology".into(),
                    model: a,
                    linux: b,
                });
            }
        }
    }
    let linux_report = l.finish()?;
    if !every_step && stopped.is_none() && states.settle() {
        if let Some((a, b)) = states.match_topology(&linux_report.topology)? {
            divergences.push(Divergence {
                line: scenario.stmts.last().map_or(0, |s| s.line),
                what: "final topology".into(),
                model: a,
                linux: b,
            });
        }
    }
    let most = states.most;
    // The settle point: Linux must reach, within a deadline, a state some
    // followed model state reaches once all its deferred work has run.
    let wants = if stopped.is_none() && divergences.is_empty() {
        images_of(&states.all)
    } else {
        Vec::new()
    };
    // Every state in the set answered alike, so any one can stand for the
    // model; the first is the one that did the least pending work.
    let mut first = states.all.swap_remove(0);
    first.report.topology = first.backend.topology()?;
    let real = linux
        .as_any_mut()
        .and_then(|a| a.downcast_mut::<LinuxBackend>());
    if let (false, Some(l)) = (wants.is_empty(), real) {
        let line = scenario.stmts.last().map_or(0, |s| s.line);
        divergences.extend(settle_point(&wants, l, line)?);
    }
    Ok(Comparison {
        model: first.report,
        linux: linux_report,
        divergences,
        stopped,
        states: most,
        after_step,
    })
}
