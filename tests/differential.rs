//! Generated scenarios on the model and on Linux, compared step by step and
//! topology by topology. `FDLAB_CASES=N` runs another number (the default
//! is what fits in about two minutes of CI); `fdlab fuzz` does the same
//! outside cargo.

mod support;

use std::path::Path;

use std::time::Duration;

use fdlab::backend::linux::backend::SETTLE_DEADLINE;
use fdlab::backend::{Backend, BackendError, LinuxBackend, ModelBackend};
use fdlab::lang::print::scenario_text;
use fdlab::lang::{parse, Scenario};
use fdlab::tools::compare::run_both;
use fdlab::tools::fuzz::{fuzz, fuzz_with, Finding, Pair};
use fdlab::tools::gen::{ops, realize};
use fdlab_model::{Call, Outcome, Ret, Topology};
use proptest::prelude::*;

use support::cases;

#[test]
fn generated_scenarios_agree_with_linux() {
    let seed = std::env::var("FDLAB_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2026);
    // About two minutes on 2 cores in a debug build, cases compared twice
    // the cores at a time (`fdlab fuzz` runs more).
    let jobs = 2 * std::thread::available_parallelism().map_or(1, |n| n.get());
    let r = fuzz(
        cases(4000),
        seed,
        40,
        jobs,
        Path::new(env!("CARGO_BIN_EXE_fdlab")),
        &ModelBackend::deferred,
        SETTLE_DEADLINE,
        &fdlab::tools::fuzz::Watch::none(),
    );
    if let Some(f) = &r.failure {
        panic!(
            "model and Linux disagree (seed {seed}):\n{}",
            fdlab::render::text::finding(f)
        );
    }
    assert_eq!(r.cases, cases(4000));
    assert!(
        r.steps > u64::from(r.cases) * 5,
        "scenarios are too short: {} steps",
        r.steps
    );
    assert!(r.cost.comparisons > 0 && r.cost.descriptors > 0);
}

/// The Linux backend reads after every step only what the step may have
/// changed (`observe::Since`). Checked here against a snapshot that reads
/// everything, after every step of generated scenarios (the corpus is
/// checked so in `tests/linux.rs`).
#[test]
fn partial_observations_agree_with_whole_ones() {
    let helper = Path::new(env!("CARGO_BIN_EXE_fdlab"));
    let make = |s: &Scenario| -> Result<Pair, BackendError> {
        let mut l = LinuxBackend::with_floor(helper, fdlab::tools::fuzz::helper_floor(s))?;
        l.check_observation(true);
        Ok((Box::new(ModelBackend::deferred()), Box::new(l)))
    };
    let jobs = 2 * std::thread::available_parallelism().map_or(1, |n| n.get());
    let r = fuzz_with(cases(300), 2027, 40, jobs, &make);
    if let Some(f) = &r.failure {
        panic!("{}", fdlab::render::text::finding(f));
    }
    // Tables were carried, so the check compared something.
    assert!(
        r.cost.carried > r.cost.descriptors / 5,
        "{} of {} descriptors carried",
        r.cost.carried,
        r.cost.descriptors
    );
}

/// The model, except that `dup` answers one more than it did.
struct Liar(ModelBackend);

impl Backend for Liar {
    fn name(&self) -> &'static str {
        "liar"
    }
    fn spawn(&mut self, n: &str, stdio: bool) -> Result<(), BackendError> {
        self.0.spawn(n, stdio)
    }
    fn call(&mut self, p: &str, c: &Call) -> Result<Outcome, BackendError> {
        let r = self.0.call(p, c)?;
        Ok(match (c, r) {
            (Call::Dup { .. }, Ok(Ret::Ints(v))) => {
                Ok(Ret::Ints(v.iter().map(|n| n + 1).collect()))
            }
            (_, r) => r,
        })
    }
    fn file_relation(
        &mut self,
        a: (&str, i32),
        b: (&str, i32),
    ) -> Result<fdlab::backend::FileRelation, BackendError> {
        self.0.file_relation(a, b)
    }
    fn object_relation(
        &mut self,
        a: (&str, i32),
        b: (&str, i32),
    ) -> Result<fdlab::backend::FileRelation, BackendError> {
        self.0.object_relation(a, b)
    }
    fn same_table(&mut self, a: &str, b: &str) -> Result<bool, BackendError> {
        self.0.same_table(a, b)
    }
    fn open_fds(&mut self, p: &str) -> Result<Vec<i32>, BackendError> {
        self.0.open_fds(p)
    }
    fn watches(
        &mut self,
        e: (&str, i32),
        t: (&str, i32),
        n: Option<i32>,
    ) -> Result<fdlab::backend::WatchRelation, BackendError> {
        self.0.watches(e, t, n)
    }
    fn topology(&mut self) -> Result<Topology, BackendError> {
        self.0.topology()
    }
}

/// Cases run at once give the same run: the same scenarios from the seed,
/// the same first failure, the same minimal scenario, the same counts.
#[test]
fn any_number_of_jobs_gives_the_same_verdict() {
    let make = |_: &Scenario| -> Result<Pair, BackendError> {
        Ok((
            Box::new(ModelBackend::new()),
            Box::new(Liar(ModelBackend::new())),
        ))
    };
    let runs: Vec<_> = [1, 4]
        .iter()
        .map(|&jobs| fuzz_with(300, 7, 40, jobs, &make))
        .collect();
    let seen = |r: &fdlab::tools::fuzz::FuzzReport| {
        (
            r.cases,
            r.steps,
            r.first_failure.map(|f| f.0),
            r.failure.as_ref().map(fdlab::render::text::finding),
        )
    };
    assert!(runs[0].failure.is_some(), "the lie is found");
    assert_eq!(seen(&runs[0]), seen(&runs[1]));
    // And a run that finds nothing compares every case, in any order.
    let honest = |_: &Scenario| -> Result<Pair, BackendError> {
        Ok((Box::new(ModelBackend::new()), Box::new(ModelBackend::new())))
    };
    let a = fuzz_with(60, 7, 40, 1, &honest);
    let b = fuzz_with(60, 7, 40, 3, &honest);
    assert!(a.failure.is_none() && b.failure.is_none());
    assert_eq!((a.cases, a.steps), (b.cases, b.steps));
    assert_eq!(a.cases, 60);
}

#[test]
fn a_disagreement_is_caught_and_shrunk_to_a_minimal_scenario() {
    let make = |_: &Scenario| -> Result<Pair, BackendError> {
        Ok((
            Box::new(ModelBackend::new()),
            Box::new(Liar(ModelBackend::new())),
        ))
    };
    let r = fuzz_with(300, 1, 40, 1, &make);
    let found = r.failure.expect("the lie is found");
    let Finding::Disagreement { divergences, .. } = &found else {
        panic!("{found:?}")
    };
    assert!(
        divergences.iter().any(|d| d.what.contains("dup(")),
        "{divergences:?}"
    );
    let text = fdlab::render::text::finding(&found);
    let calls: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("spawn"))
        .collect();
    // Minimal: something to dup, and the dup.
    assert!(calls.len() <= 2, "not minimal:\n{text}");
    assert!(calls.iter().any(|l| l.contains(": dup ")), "{text}");
    // The file parses back, with the liar's answers as expectations.
    parse("min.fds", &text).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, .. ProptestConfig::default() })]

    /// Generated scenarios print as `.fds` text that parses back to them.
    #[test]
    fn printed_scenarios_parse_back(ops in ops(1..40)) {
        let s = realize(&ops);
        let text = scenario_text(&s);
        let back = parse(&s.file, &text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back.stmts, s.stmts);
    }
}

/// A collector that frees what a process can still receive answers like
/// Linux for as long as "it has not run yet" explains Linux: only the
/// settle point, where Linux must reach the model's state after all its
/// deferred work, catches it (in a release build, where the model's own
/// invariants are not checked). An honest model passes the same scenario.
/// How fast `fdlab fuzz --plant gc-over-eager` finds it is measured
/// outside the tests.
#[test]
fn an_over_eager_collector_is_caught_at_the_settle_point() {
    use fdlab_model::mutant::Mutant;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/unix-gc-spares-reachable.fds");
    let s = parse(
        "unix-gc-spares-reachable.fds",
        &std::fs::read_to_string(&path).unwrap(),
    )
    .unwrap();
    let helper = Path::new(env!("CARGO_BIN_EXE_fdlab"));
    let compare = |planted: bool| {
        let mut m = ModelBackend::deferred();
        if planted {
            m.world_mut().plant(Mutant::GcOverEager);
            m.world_mut().set_checked(false);
        }
        let mut l = LinuxBackend::new(helper).unwrap();
        l.set_settle_deadline(Duration::from_millis(300));
        run_both(&s, Box::new(m), &mut l, false).unwrap()
    };
    let honest = compare(false);
    assert!(honest.divergences.is_empty(), "{:?}", honest.divergences);
    let planted = compare(true);
    let settled: Vec<_> = planted
        .divergences
        .iter()
        .filter(|d| d.what.contains("settled state"))
        .collect();
    assert_eq!(settled.len(), 1, "{:?}", planted.divergences);
    // What the collector wrongly freed: end 2's queue, with the pipe's
    // write end and the data.
    assert!(settled[0].linux.contains("\"hi\""), "{:?}", settled[0]);
    assert!(!settled[0].model.contains("\"hi\""), "{:?}", settled[0]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(300)))]

    /// The bound the Linux backend puts its helpers' descriptors above
    /// holds: no generated scenario makes a descriptor at or above it, in
    /// any process, after any step (on the model, which Linux agrees with).
    #[test]
    fn no_scenario_makes_a_descriptor_at_its_bound(ops in ops(1..40)) {
        let s = realize(&ops);
        let bound = s.descriptor_bound();
        let (_, frames) =
            fdlab::tools::run::run_frames(&s, &mut ModelBackend::new(), false).unwrap();
        for f in &frames {
            for p in &f.topology.processes {
                for d in &p.fds {
                    prop_assert!(d.fd < bound, "{}: fd {} at line {}, bound {bound}", p.name, d.fd, f.line);
                }
            }
        }
    }
}

/// The bound, by hand: lowest free numbers, named ones under and over the
/// limit, `F_DUPFD`'s minimum, received files.
#[test]
fn the_descriptor_bound_counts_what_can_be_made() {
    let bound = |text: &str| parse("b.fds", text).unwrap().descriptor_bound();
    assert_eq!(bound("spawn p\np: open f O_RDWR|O_CREAT\n"), 4);
    assert_eq!(bound("spawn p\np: pipe\np: dup2 0 900\n"), 901);
    // 5000 is over the default limit: that dup2 can only fail.
    assert_eq!(bound("spawn p\np: pipe\np: dup2 0 5000\n"), 6);
    assert_eq!(
        bound("spawn p\np: rlimit 10000\np: pipe\np: dup2 0 5000\n"),
        5001
    );
    assert_eq!(bound("spawn p\np: pipe\np: fcntl 0 F_DUPFD 100\n"), 106);
    // A received file was sent: one more for every descriptor sent.
    assert_eq!(
        bound("spawn p\np: socketpair SOCK_STREAM\np: sendfds 0 0 1\np: recvfds 1\n"),
        7
    );
    // Before its rlimit call a process has the default limit.
    assert_eq!(bound("spawn p\np: rlimit 2\np: pipe\n"), 5);
    // A descriptor a call uses, at any number: were the helpers' own
    // there, the call would find it open.
    assert_eq!(bound("spawn p\np: fcntl 9997 F_DUPFD 0\n"), 9998);
    assert_eq!(bound("spawn p\np: close 700\n"), 701);
    assert_eq!(bound("spawn p\np: dup2 800 3\n"), 801);
    assert_eq!(bound("spawn p\np: close_range 300 ~0\n"), 301);
}
