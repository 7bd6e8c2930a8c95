//! Differential fuzzing: generated scenarios run on the model and on Linux
//! in lockstep, with every step's result and every step's topology compared.
//! A failure shrinks to a minimal scenario, printed as a `.fds` file whose
//! expectations are Linux's answers (so `fdlab run FILE` shows where the
//! model goes wrong).

use std::time::{Duration, Instant};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::compare::{run_both, Comparison, Divergence};
use super::gen::{ops, realize, realize_counted, Coverage, Op};
use crate::backend::api::{Backend, BackendError, Cost};
use crate::backend::linux::backend::{ForkServer, LinuxBackend};
use crate::backend::model::ModelBackend;
use crate::lang::print::expected_of;
use crate::lang::{Scenario, StmtKind};

/// What a fuzzing run found.
#[derive(Debug)]
pub struct FuzzReport {
    pub cases: u32,
    /// Cases compared at a time.
    pub jobs: usize,
    pub elapsed: Duration,
    /// Cases whose comparison stopped early because the model would have
    /// had to follow too many states.
    pub stopped_early: u32,
    /// Cases in which Linux's timing mattered: the model was followed in
    /// more than one state at some step (pending garbage, a pty's echo).
    pub branched: u32,
    /// The most states followed at once in any case.
    pub most_states: usize,
    /// Steps compared in all.
    pub steps: u64,
    /// Observation cost over the run.
    pub cost: Cost,
    /// How often the generated calls hit a kind of file where they matter.
    pub coverage: Coverage,
    /// The first case that disagreed (counting from 1) and when it was
    /// met: the rest of the run is shrinking.
    pub first_failure: Option<(u32, Duration)>,
    /// The run was interrupted (Ctrl-C) after `cases`.
    pub interrupted: bool,
    /// What went wrong, if anything did.
    pub failure: Option<Finding>,
}

/// What a fuzzing run found wrong.
#[derive(Debug)]
pub enum Finding {
    /// The model and Linux disagree on `scenario`, the minimal case the
    /// failing one shrank to; its calls' expectations are Linux's answers.
    Disagreement {
        scenario: Scenario,
        divergences: Vec<Divergence>,
    },
    /// The run could not go on, or a case failed without a divergence (a
    /// backend could not run it): why, and the smallest such case.
    Aborted {
        why: String,
        scenario: Option<Scenario>,
    },
}

/// The two backends one case compares; the first is the model.
pub type Pair = (Box<dyn Backend>, Box<dyn Backend>);

/// Makes a fresh [`Pair`] for a scenario.
pub type MakePair<'a> = dyn Fn(&Scenario) -> Result<Pair, BackendError> + Sync + 'a;

/// Where a run is, for a progress display: scenarios compared so far, and
/// whether it is shrinking a failure.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: u32,
    pub shrinking: bool,
}

/// Told after every scenario; `stop()` ends the run early (an interrupt).
pub struct Watch<'a> {
    pub progress: &'a dyn Fn(Progress),
    pub stop: &'a dyn Fn() -> bool,
}

impl Watch<'_> {
    /// Nothing shown, never stopped.
    pub fn none() -> Watch<'static> {
        Watch {
            progress: &|_| {},
            stop: &|| false,
        }
    }
}

/// Runs `cases` generated scenarios of up to `len` operations on the model
/// (as `model` makes it: [`ModelBackend::deferred`], or one with a planted
/// bug) and on Linux (helpers from `helper`, waiting `settle` for its
/// deferred work at the end of each case), `jobs` at a time.
#[allow(clippy::too_many_arguments)]
pub fn fuzz(
    cases: u32,
    seed: u64,
    len: usize,
    jobs: usize,
    helper: &std::path::Path,
    model: &(dyn Fn() -> ModelBackend + Sync),
    settle: Duration,
    watch: &Watch<'_>,
) -> FuzzReport {
    // Each case's nursery is a fork of a server that a job takes from
    // here and gives back (a server serves one case at a time).
    let servers: std::sync::Mutex<Vec<ForkServer>> = std::sync::Mutex::new(Vec::new());
    let make = |s: &Scenario| -> Result<Pair, BackendError> {
        let floor = helper_floor(s);
        let taken = servers.lock().ok().and_then(|mut v| v.pop());
        let server = match taken {
            Some(server) => server,
            None => ForkServer::start(helper)?,
        };
        let mut l = match LinuxBackend::from_server(&server, floor) {
            Ok(l) => {
                if let Ok(mut v) = servers.lock() {
                    v.push(server);
                }
                l
            }
            // A server that does not answer goes; the next case starts
            // another, and this one execs its nursery.
            Err(_) => {
                drop(server);
                LinuxBackend::with_floor(helper, floor)?
            }
        };
        l.set_settle_deadline(settle);
        Ok((Box::new(model()), Box::new(l)))
    };
    fuzz_watched(cases, seed, len, jobs, &make, watch)
}

/// Where a case's helpers put their own descriptors: just above every
/// descriptor the scenario can make (at least 64, at most `HARNESS_FD`).
/// Reading `/proc/PID/fd` walks a process's table up to its last slot, and
/// the table is as large as its highest descriptor, so a low floor keeps
/// every observation's walk short.
pub fn helper_floor(s: &Scenario) -> u32 {
    s.descriptor_bound()
        .clamp(64, fdlab_model::limits::HARNESS_FD)
}

/// [`fuzz`] with any pair of backends.
pub fn fuzz_with(
    cases: u32,
    seed: u64,
    len: usize,
    jobs: usize,
    make: &MakePair<'_>,
) -> FuzzReport {
    fuzz_watched(cases, seed, len, jobs, make, &Watch::none())
}

/// The cases of a run, in order: the same seed gives the same scenarios,
/// however many run at once, and the ones proptest's own runner gave
/// (which draws a new generator from the last one for every case).
struct Cases {
    gen: TestRunner,
}

impl Cases {
    fn config() -> Config {
        Config {
            failure_persistence: None,
            ..Config::default()
        }
    }

    fn new(seed: u64) -> Cases {
        let mut seed_bytes = [0u8; 32];
        seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
        Cases {
            gen: TestRunner::new_with_rng(Cases::config(), rng),
        }
    }

    /// The next case, as a tree that can shrink.
    fn next<S: Strategy>(&mut self, strategy: &S) -> Option<S::Tree> {
        let rng = self.gen.new_rng();
        self.gen = TestRunner::new_with_rng(Cases::config(), rng);
        strategy.new_tree(&mut self.gen).ok()
    }
}

/// The most steps of shrinking by the generator's own rules.
const MAX_SHRINK_ITERS: u32 = 2000;

/// What one case gave: its comparison, or why a backend could not run it.
type Outcome = Result<(Comparison, Cost), BackendError>;

/// The first failing case: its number, its operations, and what failed
/// (the divergences, or why a backend could not run it).
type Failed = (u32, Vec<Op>, Result<Vec<Divergence>, String>);

/// [`fuzz_with`], telling `watch` how it goes.
///
/// The cases are generated in order from the seed and compared `jobs` at
/// a time (a case spends most of its time waiting for its helpers, so
/// more jobs than cores pay); their results are taken in order, and the
/// first case that fails in that order is the one shrunk, one comparison
/// at a time. So the report is the same for any `jobs`, but for timings.
pub fn fuzz_watched(
    cases: u32,
    seed: u64,
    len: usize,
    jobs: usize,
    make: &MakePair<'_>,
    watch: &Watch<'_>,
) -> FuzzReport {
    let start = Instant::now();
    let strategy = ops(1..len.max(2));
    let mut st = Stats::default();
    let mut coverage = Coverage::default();
    let mut first = None;
    let mut stopped = false;
    let mut failed: Option<Failed> = None;
    let mut gen = Cases::new(seed);
    let (work_tx, work_rx) = std::sync::mpsc::channel::<(u32, Vec<Op>)>();
    let work_rx = std::sync::Mutex::new(work_rx);
    std::thread::scope(|scope| {
        let (done_tx, done_rx) = std::sync::mpsc::channel::<(u32, Vec<Op>, Coverage, Outcome)>();
        for _ in 0..jobs.max(1) {
            let (work_rx, done_tx) = (&work_rx, done_tx.clone());
            scope.spawn(move || loop {
                let job = work_rx.lock().map(|rx| rx.recv());
                let Ok(Ok((i, ops))) = job else { break };
                let (s, cover) = realize_counted(&ops);
                let outcome = compare_once(&s, make);
                if done_tx.send((i, ops, cover, outcome)).is_err() {
                    break;
                }
            });
        }
        drop(done_tx);
        let (mut sent, mut taken, mut out) = (0u32, 0u32, 0usize);
        let mut early = std::collections::BTreeMap::new();
        loop {
            while failed.is_none() && !stopped && sent < cases && out < 2 * jobs.max(1) {
                let Some(tree) = gen.next(&strategy) else {
                    break;
                };
                if work_tx.send((sent, tree.current())).is_err() {
                    break;
                }
                sent += 1;
                out += 1;
            }
            if out == 0 {
                break;
            }
            let Ok(done) = done_rx.recv() else { break };
            out -= 1;
            early.insert(done.0, done);
            // In order: a case's result counts once all before it did.
            while let Some((i, ops, cover, outcome)) = early.remove(&taken) {
                taken += 1;
                if failed.is_some() || stopped {
                    continue;
                }
                coverage.add(&cover);
                match outcome {
                    Ok((c, cost)) => {
                        st.record(&c, &cost);
                        if !c.divergences.is_empty() {
                            failed = Some((i, ops, Ok(c.divergences)));
                        }
                    }
                    Err(e) => {
                        st.cases += 1;
                        failed = Some((i, ops, Err(e.to_string())));
                    }
                }
                if failed.is_some() {
                    first = Some((st.cases, start.elapsed()));
                }
                (watch.progress)(Progress {
                    done: st.cases,
                    shrinking: false,
                });
                stopped |= (watch.stop)();
            }
        }
        drop(work_tx);
    });
    let failure = failed.map(|(i, ops, what)| {
        let last = std::cell::RefCell::new(what.clone().unwrap_or_default());
        let last_err = std::cell::RefCell::new(what.err());
        if stopped {
            return disagreement(&realize(&ops), make, last.take());
        }
        // The generator's own shrinking first: the case again from the
        // seed, simplified while it fails.
        let mut again = Cases::new(seed);
        let mut tree = None;
        for _ in 0..=i {
            tree = again.next(&strategy);
        }
        let mut smallest = ops;
        if let Some(tree) = tree.as_mut().and_then(|t| t.simplify().then_some(t)) {
            let mut fails = |ops: &[Op]| -> bool {
                let outcome = compare_once(&realize(ops), make);
                if let Ok((c, cost)) = &outcome {
                    st.record(c, cost);
                } else {
                    st.cases += 1;
                }
                (watch.progress)(Progress {
                    done: st.cases,
                    shrinking: true,
                });
                match outcome {
                    Ok((c, _)) if !c.divergences.is_empty() => {
                        *last.borrow_mut() = c.divergences;
                        true
                    }
                    Ok(_) => false,
                    Err(e) => {
                        *last_err.borrow_mut() = Some(e.to_string());
                        true
                    }
                }
            };
            for _ in 0..MAX_SHRINK_ITERS {
                if (watch.stop)() {
                    stopped = true;
                    break;
                }
                let current = tree.current();
                let more = if fails(&current) {
                    smallest = current;
                    tree.simplify()
                } else {
                    tree.complicate()
                };
                if !more {
                    break;
                }
            }
        }
        if stopped {
            return disagreement(&realize(&smallest), make, last.take());
        }
        match disagreement(
            &remove_stmts_while_failing(
                realize(&remove_while_failing(smallest, make, watch, &last)),
                make,
                watch,
                &last,
            ),
            make,
            last.take(),
        ) {
            Finding::Disagreement {
                divergences,
                scenario,
            } if divergences.is_empty() => Finding::Aborted {
                why: match last_err.take() {
                    Some(e) => format!("a backend could not run the case: {e}"),
                    None => "a case failed and then passed when run again".to_string(),
                },
                scenario: Some(scenario),
            },
            f => f,
        }
    });
    FuzzReport {
        cases: st.cases,
        jobs: jobs.max(1),
        elapsed: start.elapsed(),
        stopped_early: st.stopped,
        branched: st.branched,
        most_states: st.most_states,
        steps: st.steps,
        cost: st.cost,
        coverage,
        first_failure: first,
        interrupted: stopped || (watch.stop)(),
        failure,
    }
}

/// Proptest's shrinking can stop where removing one more operation would
/// still fail (it shrinks the operations themselves, and does not go back
/// to removing them): removes operations one at a time while the case
/// still diverges, keeping the last divergences in `last`.
fn remove_while_failing(
    mut ops: Vec<Op>,
    make: &MakePair<'_>,
    watch: &Watch<'_>,
    last: &std::cell::RefCell<Vec<Divergence>>,
) -> Vec<Op> {
    let mut i = 0;
    while i < ops.len() && !(watch.stop)() {
        let mut fewer = ops.clone();
        fewer.remove(i);
        match compare_once(&realize(&fewer), make) {
            Ok((c, _)) if !c.divergences.is_empty() => {
                *last.borrow_mut() = c.divergences;
                ops = fewer;
            }
            _ => i += 1,
        }
    }
    ops
}

/// Then the same with the statements of the scenario they realize to: an
/// operation may bring calls it needs (a file for `lseek` to move in),
/// and the divergence may need fewer. Removing a `fork` or `clone_files`
/// gives its child's later calls to the parent. A statement whose removal
/// leaves the scenario invalid stays.
fn remove_stmts_while_failing(
    mut s: Scenario,
    make: &MakePair<'_>,
    watch: &Watch<'_>,
    last: &std::cell::RefCell<Vec<Divergence>>,
) -> Scenario {
    let mut i = 0;
    while i < s.stmts.len() && !(watch.stop)() {
        let mut fewer = s.clone();
        let gone = fewer.stmts.remove(i);
        // A process made by fork or clone may be its parent instead.
        if let StmtKind::Call { proc, call, .. } = &gone.kind {
            if let Some(child) = call.child() {
                for stmt in &mut fewer.stmts[i..] {
                    if let StmtKind::Call { proc: p, .. } = &mut stmt.kind {
                        if p == child {
                            *p = proc.clone();
                        }
                    }
                }
            }
        }
        // Printed and parsed again: checked as a scenario, lines renumbered.
        let text = crate::lang::print::scenario_text(&fewer);
        let Ok(fewer) = crate::lang::parse(&s.file, &text) else {
            i += 1;
            continue;
        };
        match compare_once(&fewer, make) {
            Ok((c, _)) if !c.divergences.is_empty() => {
                *last.borrow_mut() = c.divergences;
                s = fewer;
            }
            _ => i += 1,
        }
    }
    s
}

/// Counts kept over a fuzzing run.
#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    cases: u32,
    stopped: u32,
    branched: u32,
    most_states: usize,
    steps: u64,
    cost: Cost,
}

impl Stats {
    /// Counts one compared case.
    fn record(&mut self, c: &Comparison, cost: &Cost) {
        self.cases += 1;
        self.stopped += u32::from(c.stopped.is_some());
        self.branched += u32::from(c.states > 1);
        self.most_states = self.most_states.max(c.states);
        self.steps += c.linux.steps.len() as u64;
        self.cost.add(cost);
    }
}

/// One scenario on both backends, compared after every step; with the
/// second backend's cost.
///
/// Errors: what either backend could not do.
pub fn compare_once(s: &Scenario, make: &MakePair<'_>) -> Result<(Comparison, Cost), BackendError> {
    let (model, mut other) = make(s)?;
    let c = run_both(s, model, other.as_mut(), true)?;
    Ok((c, other.cost()))
}

/// The minimal failing case `s`, run once more so that its calls'
/// expectations can be Linux's answers. The divergences are that run's, or
/// `seen` (the shrinking's last failure) if it agreed this time.
fn disagreement(s: &Scenario, make: &MakePair<'_>, seen: Vec<Divergence>) -> Finding {
    let mut scenario = s.clone();
    let divergences = match compare_once(s, make) {
        Ok((c, _)) => {
            let mut steps = c.linux.steps.iter();
            for stmt in &mut scenario.stmts {
                if let StmtKind::Call { expected, .. } = &mut stmt.kind {
                    if let Some(step) = steps.next() {
                        *expected = Some(expected_of(&step.result));
                    }
                }
            }
            if c.divergences.is_empty() {
                seen
            } else {
                c.divergences
            }
        }
        Err(_) => seen,
    };
    Finding::Disagreement {
        scenario,
        divergences,
    }
}
