//! Differential fuzzing: generated scenarios run on the model and on Linux
//! in lockstep, with every step's result and every step's topology compared.
//! A failure shrinks to a minimal scenario, printed as a `.fds` file whose
//! expectations are Linux's answers (so `fdlab run FILE` shows where the
//! model goes wrong).

use std::time::{Duration, Instant};

use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use super::compare::{run_both, Comparison, Divergence};
use super::gen::{ops, realize, realize_counted, Coverage, Op};
use crate::backend::api::{Backend, BackendError, Cost};
use crate::backend::linux::backend::LinuxBackend;
use crate::backend::model::ModelBackend;
use crate::lang::print::expected_of;
use crate::lang::{Scenario, StmtKind};

/// What a fuzzing run found.
#[derive(Debug)]
pub struct FuzzReport {
    pub cases: u32,
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

/// Makes a fresh [`Pair`].
pub type MakePair<'a> = dyn Fn() -> Result<Pair, BackendError> + 'a;

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
/// deferred work at the end of each case).
pub fn fuzz(
    cases: u32,
    seed: u64,
    len: usize,
    helper: &std::path::Path,
    model: &dyn Fn() -> ModelBackend,
    settle: Duration,
    watch: &Watch<'_>,
) -> FuzzReport {
    let make = || -> Result<Pair, BackendError> {
        let mut l = LinuxBackend::new(helper)?;
        l.set_settle_deadline(settle);
        Ok((Box::new(model()), Box::new(l)))
    };
    fuzz_watched(cases, seed, len, &make, watch)
}

/// [`fuzz`] with any pair of backends.
pub fn fuzz_with(cases: u32, seed: u64, len: usize, make: &MakePair<'_>) -> FuzzReport {
    fuzz_watched(cases, seed, len, make, &Watch::none())
}

/// [`fuzz_with`], telling `watch` how it goes.
pub fn fuzz_watched(
    cases: u32,
    seed: u64,
    len: usize,
    make: &MakePair<'_>,
    watch: &Watch<'_>,
) -> FuzzReport {
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    };
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let start = Instant::now();
    let stats = std::cell::Cell::new(Stats::default());
    // The divergences of the last case that failed: shrinking ends on the
    // minimal one.
    let last = std::cell::RefCell::new(Vec::new());
    let coverage = std::cell::RefCell::new(Coverage::default());
    let first = std::cell::Cell::new(None);
    let stopped = std::cell::Cell::new(false);
    // The smallest case that really failed so far: what an interrupt
    // during shrinking reports.
    let last_ops: std::cell::RefCell<Option<Vec<Op>>> = std::cell::RefCell::new(None);
    // What a backend said when it could not run the last case that failed.
    let last_err: std::cell::RefCell<Option<String>> = std::cell::RefCell::new(None);
    let result = runner.run(&ops(1..len.max(2)), |ops: Vec<Op>| {
        if stopped.get() || (watch.stop)() {
            // Every case from here fails at once, so that shrinking (which
            // proptest insists on) ends at once too.
            stopped.set(true);
            return Err(TestCaseError::fail("interrupted"));
        }
        let (s, cover) = realize_counted(&ops);
        coverage.borrow_mut().add(&cover);
        let c = compare_once(&s, make).map_err(|e| {
            // Not a divergence: a backend could not run the case. Shrinking
            // goes on, and the report says what failed.
            if first.get().is_none() {
                first.set(Some((stats.get().cases + 1, start.elapsed())));
            }
            *last_err.borrow_mut() = Some(e.to_string());
            *last_ops.borrow_mut() = Some(ops.clone());
            TestCaseError::fail(e.to_string())
        })?;
        let mut st = stats.get();
        st.cases += 1;
        st.stopped += u32::from(c.0.stopped.is_some());
        st.branched += u32::from(c.0.states > 1);
        st.most_states = st.most_states.max(c.0.states);
        st.steps += c.0.linux.steps.len() as u64;
        st.cost.add(&c.1);
        stats.set(st);
        (watch.progress)(Progress {
            done: st.cases,
            shrinking: first.get().is_some(),
        });
        if c.0.divergences.is_empty() {
            Ok(())
        } else {
            if first.get().is_none() {
                first.set(Some((st.cases, start.elapsed())));
            }
            let n = c.0.divergences.len();
            *last.borrow_mut() = c.0.divergences;
            *last_ops.borrow_mut() = Some(ops.clone());
            Err(TestCaseError::fail(format!("{n} divergences")))
        }
    });
    let st = stats.get();
    let failure = match result {
        _ if stopped.get() => last_ops
            .take()
            .map(|ops| disagreement(&realize(&ops), make, last.take())),
        Ok(()) => None,
        Err(TestError::Fail(_, ops)) => match disagreement(
            &remove_stmts_while_failing(
                realize(&remove_while_failing(ops, make, watch, &last)),
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
            } if divergences.is_empty() => Some(Finding::Aborted {
                why: match last_err.take() {
                    Some(e) => format!("a backend could not run the case: {e}"),
                    None => "a case failed and then passed when run again".to_string(),
                },
                scenario: Some(scenario),
            }),
            f => Some(f),
        },
        Err(TestError::Abort(why)) => Some(Finding::Aborted {
            why: why.to_string(),
            scenario: None,
        }),
    };
    FuzzReport {
        cases: st.cases,
        elapsed: start.elapsed(),
        stopped_early: st.stopped,
        branched: st.branched,
        most_states: st.most_states,
        steps: st.steps,
        cost: st.cost,
        coverage: coverage.take(),
        first_failure: first.get(),
        interrupted: stopped.get(),
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

/// One scenario on both backends, compared after every step; with the
/// second backend's cost.
///
/// Errors: what either backend could not do.
pub fn compare_once(s: &Scenario, make: &MakePair<'_>) -> Result<(Comparison, Cost), BackendError> {
    let (model, mut other) = make()?;
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
