//! The real tracker against its model (`fdlab_model::tracker`), driven by
//! the same random operations: open over a few names with a small capacity,
//! get/put with reads and writes, unsuspendable opens and closes that take
//! room from the handles, unlink, close, and files replaced behind the
//! tracker's back. After every step:
//!
//! - the step's result is the model's (bytes read, bytes written, handle or
//!   error kind);
//! - the statistics, and every handle's state (active with its users, or
//!   suspended), are the model's;
//! - both sides' invariants hold;
//! - the process has exactly `baseline + active + unsuspendable` descriptors
//!   open, never more than `baseline + capacity`, counted in `/proc/self/fd`;
//! - the directory and the unlinked-file pool hold the model's files, byte
//!   for byte.
//!
//! Counting descriptors needs the process to itself, so each test runs its
//! state machine in a helper process (see `support/mod.rs`).
//! `planted_bugs_are_caught` plants each of the model's planted bugs and
//! requires this test to find it: a test that cannot fail would pass there.

mod support;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use fdlab_tracker::model::{Access, Callback, HandleId, PlantedBug, Tracker, UnsuspendableId};
use fdlab_tracker::{ArcFdGuard, Directory, ErrorKind, FdTracker, FsHandle, HandleState};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use support::{entries, fd_count, isolated, TempDir};

const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];
const POOL: &str = "unlinked";

thread_local! {
    /// The bug the next runs plant in the model.
    static PLANT: Cell<Option<PlantedBug>> = const { Cell::new(None) };
}

const fn access(read: bool, write: bool, append: bool, create: bool, trunc: bool) -> Access {
    Access {
        read,
        write,
        append,
        create,
        trunc,
    }
}

/// The ways files are opened: read-write, truncating, read-only (which
/// fails on a missing file), append-only.
const ACCESSES: [Access; 4] = [
    access(true, true, false, true, false),
    access(true, true, false, true, true),
    access(true, false, false, false, false),
    access(false, true, true, true, false),
];

fn oflags(a: Access) -> OFlags {
    let mut f = match (a.read, a.write) {
        (true, true) => OFlags::RDWR,
        (false, true) => OFlags::WRONLY,
        _ => OFlags::RDONLY,
    };
    for (on, flag) in [
        (a.append, OFlags::APPEND),
        (a.create, OFlags::CREATE),
        (a.trunc, OFlags::TRUNC),
    ] {
        if on {
            f |= flag;
        }
    }
    f | OFlags::CLOEXEC
}

#[derive(Debug, Clone)]
enum Step {
    Open(&'static str, Access),
    /// Get and keep the guard.
    Get(HandleId),
    /// Drop the newest guard.
    Put(HandleId),
    /// Through the newest guard.
    Read(HandleId, usize),
    Write(HandleId, Vec<u8>),
    /// Get, write, read, put.
    Use(HandleId, Vec<u8>, usize),
    OpenUnsuspendable(usize, Callback),
    CloseUnsuspendable {
        ids: Vec<UnsuspendableId>,
        unknown: bool,
        fails: bool,
    },
    Unlink(HandleId),
    Close(HandleId),
    Replace(&'static str, Vec<u8>),
    /// Renamed behind the tracker's back (a log rotated).
    Rename(&'static str, &'static str),
    /// Deleted behind the tracker's back.
    Delete(&'static str),
}

/// What a step returned, for the tracker to reproduce.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum Outcome {
    #[default]
    None,
    Handle(Result<HandleId, ErrorKind>),
    Unit(Result<(), ErrorKind>),
    Bytes(Result<Vec<u8>, ErrorKind>),
    Count(Result<usize, ErrorKind>),
    Unsuspendable(Result<Vec<UnsuspendableId>, ErrorKind>),
}

#[derive(Debug, Clone)]
struct Ref {
    model: Tracker,
    last: Outcome,
}

impl Ref {
    fn handles_where(&self, f: impl Fn(HandleState, Access) -> bool) -> Vec<HandleId> {
        let m = &self.model;
        m.handles()
            .into_iter()
            .filter(|&h| match (m.state(h), m.access(h)) {
                (Some(s), Some(a)) => f(s, a),
                _ => false,
            })
            .collect()
    }
}

fn in_use(s: HandleState) -> bool {
    matches!(s, HandleState::Active { users } if users > 0)
}

fn pick(v: Vec<HandleId>) -> BoxedStrategy<HandleId> {
    proptest::sample::select(v).boxed()
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..6)
}

impl ReferenceStateMachine for Ref {
    type State = Ref;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Ref> {
        (1usize..=4)
            .prop_map(|capacity| {
                let mut model = Tracker::new(capacity);
                if let Some(bug) = PLANT.with(Cell::get) {
                    model.plant(bug);
                }
                let last = Outcome::None;
                Ref { model, last }
            })
            .boxed()
    }

    fn transitions(r: &Ref) -> BoxedStrategy<Step> {
        let name = proptest::sample::select(&NAMES[..]);
        let mut choices: Vec<(u32, BoxedStrategy<Step>)> = vec![
            (
                6,
                (name.clone(), proptest::sample::select(&ACCESSES[..]))
                    .prop_map(|(n, a)| Step::Open(n, a))
                    .boxed(),
            ),
            (
                2,
                (0usize..=3, 0usize..=3, 0..10u8)
                    .prop_map(|(count, k, how)| {
                        let callback = match how {
                            0 => Callback::Fails,
                            1 => Callback::Count(k),
                            _ => Callback::Fresh,
                        };
                        Step::OpenUnsuspendable(count, callback)
                    })
                    .boxed(),
            ),
            (
                1,
                (name.clone(), bytes())
                    .prop_map(|(n, b)| Step::Replace(n, b))
                    .boxed(),
            ),
            (
                1,
                (name.clone(), name.clone())
                    .prop_map(|(a, b)| Step::Rename(a, b))
                    .boxed(),
            ),
            (1, name.clone().prop_map(Step::Delete).boxed()),
        ];
        let all = r.handles_where(|_, _| true);
        if !all.is_empty() {
            choices.push((6, pick(all.clone()).prop_map(Step::Get).boxed()));
            let rw = r.handles_where(|_, _| true);
            let uses = (pick(rw), bytes(), 0usize..8).prop_map(|(h, b, n)| Step::Use(h, b, n));
            choices.push((10, uses.boxed()));
            choices.push((2, pick(all).prop_map(Step::Unlink).boxed()));
        }
        let idle = r.handles_where(|s, _| !in_use(s));
        if !idle.is_empty() {
            choices.push((3, pick(idle).prop_map(Step::Close).boxed()));
        }
        let busy = r.handles_where(|s, _| in_use(s));
        if !busy.is_empty() {
            choices.push((5, pick(busy.clone()).prop_map(Step::Put).boxed()));
            let readers = r.handles_where(|s, a| in_use(s) && a.read);
            if !readers.is_empty() {
                let read = (pick(readers), 0usize..8).prop_map(|(h, n)| Step::Read(h, n));
                choices.push((4, read.boxed()));
            }
            let writers = r.handles_where(|s, a| in_use(s) && a.write);
            if !writers.is_empty() {
                let write = (pick(writers), bytes()).prop_map(|(h, b)| Step::Write(h, b));
                choices.push((4, write.boxed()));
            }
        }
        let tracked = r.model.unsuspendable();
        if !tracked.is_empty() {
            let close = (
                proptest::sample::subsequence(tracked.clone(), 1..=tracked.len()),
                0..8u8,
            )
                .prop_map(|(ids, how)| Step::CloseUnsuspendable {
                    ids,
                    unknown: how == 0,
                    fails: how == 1,
                });
            choices.push((3, close.boxed()));
            let dup = (proptest::sample::select(tracked), 1usize..=3)
                .prop_map(|(u, count)| Step::OpenUnsuspendable(count, Callback::Duplicate(u)));
            choices.push((1, dup.boxed()));
        }
        proptest::strategy::Union::new_weighted(choices).boxed()
    }

    fn preconditions(r: &Ref, step: &Step) -> bool {
        let m = &r.model;
        let state = |h: &HandleId| m.state(*h);
        let access = |h: &HandleId| m.access(*h);
        match step {
            Step::Open(..) | Step::Replace(..) | Step::Rename(..) | Step::Delete(_) => true,
            Step::Get(h) | Step::Unlink(h) | Step::Use(h, ..) => state(h).is_some(),
            Step::Put(h) => state(h).is_some_and(in_use),
            Step::Read(h, _) => state(h).is_some_and(in_use) && access(h).is_some_and(|a| a.read),
            Step::Write(h, _) => state(h).is_some_and(in_use) && access(h).is_some_and(|a| a.write),
            Step::Close(h) => state(h).is_some_and(|s| !in_use(s)),
            Step::OpenUnsuspendable(count, Callback::Duplicate(u)) => {
                *count > 0 && m.unsuspendable().contains(u)
            }
            Step::OpenUnsuspendable(..) => true,
            Step::CloseUnsuspendable { ids, .. } => {
                let tracked = m.unsuspendable();
                ids.iter().all(|u| tracked.contains(u))
            }
        }
    }

    fn apply(mut r: Ref, step: &Step) -> Ref {
        let m = &mut r.model;
        r.last = match step {
            Step::Open(name, a) => Outcome::Handle(m.open(name, *a)),
            Step::Get(h) => Outcome::Unit(m.get(*h)),
            Step::Put(h) => Outcome::Unit(m.put(*h)),
            Step::Read(h, n) => Outcome::Bytes(m.read(*h, *n)),
            Step::Write(h, b) => Outcome::Count(m.write(*h, b)),
            Step::Use(h, b, n) => Outcome::Bytes(model_use(m, *h, b, *n)),
            Step::OpenUnsuspendable(count, cb) => {
                Outcome::Unsuspendable(m.open_unsuspendable(*count, *cb))
            }
            Step::CloseUnsuspendable {
                ids,
                unknown,
                fails,
            } => Outcome::Unit(m.close_unsuspendable(ids, *unknown, *fails)),
            Step::Unlink(h) => Outcome::Unit(m.unlink(*h)),
            Step::Close(h) => Outcome::Unit(m.close(*h)),
            Step::Replace(name, b) => {
                m.replace(name, b);
                Outcome::None
            }
            Step::Rename(from, to) => {
                m.rename(from, to);
                Outcome::None
            }
            Step::Delete(name) => {
                m.delete(name);
                Outcome::None
            }
        };
        r
    }
}

/// Get, write what the handle may write, read what it may read, put.
fn model_use(m: &mut Tracker, h: HandleId, b: &[u8], n: usize) -> Result<Vec<u8>, ErrorKind> {
    m.get(h)?;
    let a = m.access(h).ok_or(ErrorKind::Misuse)?;
    if a.write {
        m.write(h, b)?;
    }
    let read = if a.read { m.read(h, n)? } else { Vec::new() };
    m.put(h)?;
    Ok(read)
}

/// The real tracker and what the test holds. Fields drop in order: guards
/// and handles, descriptors, tracker, directory, files.
struct Sut {
    handles: BTreeMap<HandleId, (Arc<FsHandle>, Vec<ArcFdGuard>)>,
    unsuspendable: BTreeMap<UnsuspendableId, OwnedFd>,
    tracker: FdTracker,
    dir: Directory,
    tmp: TempDir,
    /// Descriptors open before the tracker held any.
    baseline: usize,
}

fn kind<T>(r: Result<T, fdlab_tracker::TrackerError>) -> Result<T, ErrorKind> {
    r.map_err(|e| e.kind())
}

fn devnulls(n: usize) -> Vec<OwnedFd> {
    (0..n)
        .map(|_| {
            let flags = OFlags::RDONLY | OFlags::CLOEXEC;
            rustix::fs::open("/dev/null", flags, Mode::empty()).unwrap()
        })
        .collect()
}

impl Sut {
    fn handle(&self, h: HandleId) -> &Arc<FsHandle> {
        &self.handles[&h].0
    }

    fn guard(&self, h: HandleId) -> &ArcFdGuard {
        self.handles[&h]
            .1
            .last()
            .expect("the model says it is in use")
    }

    fn real_use(&self, h: HandleId, b: &[u8], n: usize, a: Access) -> Result<Vec<u8>, ErrorKind> {
        let g = self.handle(h).get_fd().map_err(|e| e.kind())?;
        if a.write {
            assert_eq!(rustix::io::write(&g, b).unwrap(), b.len());
        }
        let mut buf = vec![0; n];
        let got = if a.read {
            rustix::io::read(&g, &mut buf[..]).unwrap()
        } else {
            0
        };
        buf.truncate(got);
        Ok(buf)
    }

    /// Runs the callback the step asks for. Returns the tracker's answer
    /// and the descriptors the callback opened (the test owns them).
    fn open_unsuspendable(
        &self,
        count: usize,
        cb: Callback,
    ) -> (Result<Vec<RawFd>, ErrorKind>, Vec<OwnedFd>) {
        let mut opened: Vec<OwnedFd> = Vec::new();
        let duplicate = match cb {
            Callback::Duplicate(u) => Some(self.unsuspendable[&u].as_raw_fd()),
            _ => None,
        };
        let result = self.tracker.open_unsuspendable(&[], count, || {
            let fresh = match cb {
                Callback::Fails => return Err(Errno::NETDOWN),
                Callback::Count(k) => k,
                Callback::Fresh => count,
                Callback::Duplicate(_) => count - 1,
            };
            opened = devnulls(fresh);
            let mut fds: Vec<RawFd> = opened.iter().map(|f| f.as_raw_fd()).collect();
            fds.extend(duplicate);
            Ok(fds)
        });
        (result.map_err(|e| e.kind()), opened)
    }

    fn close_unsuspendable(
        &mut self,
        ids: &[UnsuspendableId],
        unknown: bool,
        fails: bool,
    ) -> Result<(), ErrorKind> {
        let mut fds: Vec<RawFd> = ids
            .iter()
            .map(|u| self.unsuspendable[u].as_raw_fd())
            .collect();
        if unknown {
            // Open, and never tracked.
            fds.push(self.dir.as_fd().as_raw_fd());
        }
        let unsuspendable = &mut self.unsuspendable;
        let result = self.tracker.close_unsuspendable(&fds, |_| {
            if fails {
                return Err(Errno::NETDOWN);
            }
            for u in ids {
                unsuspendable.remove(u);
            }
            Ok(())
        });
        result.map_err(|e| e.kind())
    }
}

struct TrackerTest;

impl StateMachineTest for TrackerTest {
    type SystemUnderTest = Sut;
    type Reference = Ref;

    fn init_test(r: &Ref) -> Sut {
        let tmp = TempDir::new("state-machine");
        let tracker = FdTracker::new(tmp.path().join(POOL), r.model.capacity()).unwrap();
        let dir = Directory::open(tmp.path()).unwrap();
        Sut {
            handles: BTreeMap::new(),
            unsuspendable: BTreeMap::new(),
            tracker,
            dir,
            tmp,
            baseline: fd_count(),
        }
    }

    fn apply(mut sut: Sut, r: &Ref, step: Step) -> Sut {
        let got = match &step {
            Step::Open(name, a) => {
                let opened = sut
                    .tracker
                    .open(&sut.dir, name, oflags(*a), Mode::RUSR | Mode::WUSR);
                match (kind(opened), &r.last) {
                    (Ok(h), Outcome::Handle(Ok(id))) => {
                        sut.handles.insert(*id, (Arc::new(h), Vec::new()));
                        Outcome::Handle(Ok(*id))
                    }
                    (Ok(_), _) => Outcome::Handle(Ok(HandleId(u64::MAX))),
                    (Err(e), _) => Outcome::Handle(Err(e)),
                }
            }
            Step::Get(h) => {
                let entry = sut.handles.get_mut(h).expect("a live handle");
                Outcome::Unit(kind(entry.0.get_fd_arc()).map(|g| entry.1.push(g)))
            }
            Step::Put(h) => {
                let entry = sut.handles.get_mut(h).expect("a live handle");
                drop(entry.1.pop().expect("in use"));
                Outcome::Unit(Ok(()))
            }
            Step::Read(h, n) => {
                let mut buf = vec![0; *n];
                let got = rustix::io::read(sut.guard(*h), &mut buf[..]).unwrap();
                buf.truncate(got);
                Outcome::Bytes(Ok(buf))
            }
            Step::Write(h, b) => Outcome::Count(Ok(rustix::io::write(sut.guard(*h), b).unwrap())),
            Step::Use(h, b, n) => {
                let a = r.model.access(*h).expect("a live handle");
                Outcome::Bytes(sut.real_use(*h, b, *n, a))
            }
            Step::OpenUnsuspendable(count, cb) => {
                let (result, opened) = sut.open_unsuspendable(*count, *cb);
                match (result, &r.last) {
                    (Ok(fds), Outcome::Unsuspendable(Ok(ids))) if fds.len() == ids.len() => {
                        // The callback returned them in the order it opened them.
                        sut.unsuspendable.extend(ids.iter().copied().zip(opened));
                        Outcome::Unsuspendable(Ok(ids.clone()))
                    }
                    (Ok(fds), _) => {
                        Outcome::Unsuspendable(Ok(vec![UnsuspendableId(u64::MAX); fds.len()]))
                    }
                    (Err(e), _) => Outcome::Unsuspendable(Err(e)),
                }
            }
            Step::CloseUnsuspendable {
                ids,
                unknown,
                fails,
            } => Outcome::Unit(sut.close_unsuspendable(ids, *unknown, *fails)),
            Step::Unlink(h) => Outcome::Unit(kind(sut.handle(*h).unlink())),
            Step::Close(h) => {
                let (handle, guards) = sut.handles.remove(h).expect("a live handle");
                assert!(guards.is_empty(), "the model says it is not in use");
                let handle = Arc::try_unwrap(handle).expect("no guard holds it");
                Outcome::Unit(kind(handle.close()))
            }
            Step::Replace(name, b) => {
                let tmp = sut.tmp.path().join(format!("{name}.new"));
                std::fs::write(&tmp, b).unwrap();
                std::fs::rename(&tmp, sut.tmp.path().join(name)).unwrap();
                Outcome::None
            }
            Step::Rename(from, to) => {
                let _ = std::fs::rename(sut.tmp.path().join(from), sut.tmp.path().join(to));
                Outcome::None
            }
            Step::Delete(name) => {
                let _ = std::fs::remove_file(sut.tmp.path().join(name));
                Outcome::None
            }
        };
        if got != r.last {
            let dump = sut.tracker.dump();
            panic!(
                "{step:?}: the tracker answered {got:?}, the model {:?}\n{dump}",
                r.last
            );
        }
        sut
    }

    fn check_invariants(sut: &Sut, r: &Ref) {
        let m = &r.model;
        if let Err(v) = sut.tracker.check_invariants() {
            panic!("tracker: {v}");
        }
        if let Err(v) = m.check_invariants() {
            panic!("model: {v}");
        }
        let stats = sut.tracker.stats();
        assert_eq!(stats, m.stats(), "statistics");
        for (h, (handle, _)) in &sut.handles {
            assert_eq!(Some(handle.state()), m.state(*h), "state of handle {}", h.0);
        }
        assert_eq!(sut.handles.len(), m.handles().len(), "live handles");
        // The descriptors the process holds: exactly the tracker's, within
        // its budget.
        let held = fd_count() - sut.baseline;
        assert_eq!(held, stats.active + stats.unsuspendable, "descriptors held");
        assert!(
            held <= stats.capacity,
            "{held} descriptors held, capacity {}",
            stats.capacity
        );
        // The files, byte for byte.
        let mut named = sut.tmp.entries();
        named.retain(|n| n != POOL);
        let expected = m.named_files();
        assert_eq!(
            named,
            expected.keys().cloned().collect::<Vec<_>>(),
            "directory"
        );
        for (name, data) in &expected {
            let on_disk = std::fs::read(sut.tmp.path().join(name)).unwrap();
            assert_eq!(&on_disk, data, "bytes of {name}");
        }
        let pool = sut.tmp.path().join(POOL);
        let pooled = m.pooled_files();
        let names: Vec<String> = pooled.keys().map(|n| n.to_string()).collect();
        let mut on_disk = entries(&pool);
        on_disk.sort_by_key(|n| n.parse::<u64>().unwrap_or(u64::MAX));
        assert_eq!(on_disk, names, "pool");
        assert_eq!(
            pool.exists(),
            !pooled.is_empty(),
            "the pool directory exists while it holds files"
        );
        for (n, data) in &pooled {
            let bytes = std::fs::read(pool.join(n.to_string())).unwrap();
            assert_eq!(&bytes, data, "bytes of pooled file {n}");
        }
    }

    fn teardown(mut sut: Sut, _: <Ref as ReferenceStateMachine>::State) {
        for (_, (handle, guards)) in std::mem::take(&mut sut.handles) {
            drop(guards);
            let handle = Arc::try_unwrap(handle).expect("no guard left");
            handle.close().unwrap();
        }
        let fds: Vec<RawFd> = sut.unsuspendable.values().map(|f| f.as_raw_fd()).collect();
        let unsuspendable = &mut sut.unsuspendable;
        sut.tracker
            .close_unsuspendable(&fds, |_| {
                unsuspendable.clear();
                Ok::<_, Errno>(())
            })
            .unwrap();
        assert_eq!(fd_count(), sut.baseline, "everything closed");
        assert!(
            !sut.tmp.path().join(POOL).exists(),
            "the pool went with its last file"
        );
        let Sut { tracker, .. } = sut;
        if let Err(leak) = tracker.destroy() {
            panic!("{leak}");
        }
    }
}

fn cases() -> u32 {
    std::env::var("FDLAB_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(512)
}

/// Runs the state machine with `bug` planted in the model. Returns the
/// first failure, shrunk.
fn run(bug: Option<PlantedBug>, cases: u32) -> Result<(), String> {
    PLANT.with(|p| p.set(bug));
    let config = Config {
        cases,
        failure_persistence: None,
        // Some shrinking is needed: proptest-state-machine's value tree
        // expects `simplify` before it reports a failure.
        max_shrink_iters: 256,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config.clone());
    let result = runner.run(&Ref::sequential_strategy(1..60), |(state, steps, seen)| {
        catch_unwind(AssertUnwindSafe(|| {
            TrackerTest::test_sequential(config.clone(), state, steps, seen)
        }))
        .map_err(|p| {
            let message = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            TestCaseError::fail(message)
        })
    });
    PLANT.with(|p| p.set(None));
    result.map_err(|e| e.to_string())
}

#[test]
fn tracker_agrees_with_model() {
    isolated("tracker_agrees_with_model", || {
        if let Err(e) = run(None, cases()) {
            panic!("{e}");
        }
    });
}

/// Each planted bug makes the test above fail.
#[test]
fn planted_bugs_are_caught() {
    isolated("planted_bugs_are_caught", || {
        // The failures are expected: keep their panic messages quiet.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let caught: Vec<(PlantedBug, bool)> = [
            PlantedBug::EvictMostRecent,
            PlantedBug::ForgetOffset,
            PlantedBug::ReplayTrunc,
        ]
        .into_iter()
        .map(|bug| (bug, run(Some(bug), 256).is_err()))
        .collect();
        std::panic::set_hook(hook);
        for (bug, caught) in caught {
            assert!(caught, "{bug:?} went unnoticed");
        }
    });
}
