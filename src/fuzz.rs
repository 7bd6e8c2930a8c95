//! Differential fuzzing: generated scenarios run on the model and on Linux
//! in lockstep, with every step's result and every step's topology compared.
//! A failure shrinks to a minimal scenario, printed as a `.fds` file whose
//! expectations are Linux's answers (so `fdlab run FILE` shows where the
//! model goes wrong).

use std::time::{Duration, Instant};

use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use crate::backend::{Backend, BackendError, LinuxBackend, ModelBackend};
use crate::compare::{self, run_both, Comparison};
use crate::gen::{ops, realize, Op};
use crate::lang::print::{expected_of, scenario_text};
use crate::lang::{Scenario, StmtKind};
use crate::linux::observe::Cost;

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
    /// The minimal failing scenario (annotated `.fds` text) and why.
    pub failure: Option<(String, String)>,
}

/// The two backends one case compares; the first is the model.
pub type Pair = (Box<dyn Backend>, Box<dyn Backend>);

/// Makes a fresh [`Pair`].
pub type MakePair<'a> = dyn Fn() -> Result<Pair, BackendError> + 'a;

/// Runs `cases` generated scenarios of up to `len` operations on the model
/// and on Linux (helpers from `helper`).
pub fn fuzz(cases: u32, seed: u64, len: usize, helper: &std::path::Path) -> FuzzReport {
    let make = || -> Result<Pair, BackendError> {
        Ok((
            Box::new(ModelBackend::deferred()),
            Box::new(LinuxBackend::new(helper)?),
        ))
    };
    fuzz_with(cases, seed, len, &make)
}

/// [`fuzz`] with any pair of backends.
pub fn fuzz_with(cases: u32, seed: u64, len: usize, make: &MakePair<'_>) -> FuzzReport {
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
    let result = runner.run(&ops(1..len.max(2)), |ops: Vec<Op>| {
        let s = realize(&ops);
        let c = compare_once(&s, make).map_err(TestCaseError::fail)?;
        let mut st = stats.get();
        st.cases += 1;
        st.stopped += u32::from(c.0.stopped.is_some());
        st.branched += u32::from(c.0.states > 1);
        st.most_states = st.most_states.max(c.0.states);
        st.steps += c.0.linux.steps.len() as u64;
        st.cost.add(&c.1);
        stats.set(st);
        if c.0.divergences.is_empty() {
            Ok(())
        } else {
            Err(TestCaseError::fail(compare::render(&c.0.divergences)))
        }
    });
    let st = stats.get();
    let failure = match result {
        Ok(()) => None,
        Err(TestError::Fail(why, ops)) => Some((annotated(&realize(&ops), make), why.to_string())),
        Err(TestError::Abort(why)) => Some((String::new(), why.to_string())),
    };
    FuzzReport {
        cases: st.cases,
        elapsed: start.elapsed(),
        stopped_early: st.stopped,
        branched: st.branched,
        most_states: st.most_states,
        steps: st.steps,
        cost: st.cost,
        failure,
    }
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
/// second backend's observation cost.
pub fn compare_once(s: &Scenario, make: &MakePair<'_>) -> Result<(Comparison, Cost), String> {
    let (model, mut other) = make().map_err(|e| e.to_string())?;
    let c = run_both(s, model, other.as_mut(), true).map_err(|e| format!("backend error: {e}"))?;
    Ok((c, other.cost()))
}

/// `s` as `.fds` text with Linux's answers as expectations and the
/// divergences as comments.
pub fn annotated(s: &Scenario, make: &MakePair<'_>) -> String {
    let Ok((c, _)) = compare_once(s, make) else {
        return scenario_text(s);
    };
    let mut s = s.clone();
    let mut steps = c.linux.steps.iter();
    for stmt in &mut s.stmts {
        if let StmtKind::Call { expected, .. } = &mut stmt.kind {
            if let Some(step) = steps.next() {
                *expected = Some(expected_of(&step.result));
            }
        }
    }
    let mut out = String::from("# A minimal scenario on which the model and Linux disagree; the\n# expectations are Linux's answers. Divergences:\n");
    for line in compare::render(&c.divergences).lines() {
        out.push_str(&format!("#   {line}\n"));
    }
    out.push_str(&scenario_text(&s));
    out
}
