//! The model against a reference so small it is obviously right: each
//! process's table as a map from descriptor number to a file id, plus which
//! file ids are sockets and what waits in their queues.
//!
//! Random call sequences from several processes, valid and invalid, drive
//! both. After every step the model's result must be the one the reference
//! predicts, the tables must be the same up to renaming of files, and every
//! model invariant must hold. `planted_bug_is_caught` plants a bug and
//! requires this test to find it.
//!
//! Where Linux's answer depends on what the reference does not track (a
//! peer kept alive only by references in flight, which the garbage collector
//! may free), the preconditions keep the generator away. Of the named-socket
//! calls it makes only `socket`, whose sockets it follows exactly: a send or
//! receive on one that was never connected fails as Linux's order of checks
//! says (the fuzzer holds the other calls against Linux).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};

use crate::call::{Call, EpollOp, FcntlCmd, Outcome, Ret};
use crate::socket::SockFlags;
use crate::{invariants, Errno, Events, FileId, OFlags, Pid, SockType, World};

const NAMES: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Vnode,
    Pipe,
    Epoll,
    Sock {
        peer: usize,
    },
    /// A socket from `socket`: not bound, never connected.
    Lone(SockType),
}

#[derive(Debug, Clone)]
enum Tr {
    Spawn(&'static str),
    Call(&'static str, Call),
    Nop,
}

/// What the reference says the model must answer.
#[derive(Debug, Clone, Default)]
enum Prediction {
    #[default]
    None,
    Exact(Outcome),
    /// Success of any value, or one of these errnos.
    OkOr(Vec<Errno>),
}

type Table = BTreeMap<i32, (usize, bool)>;

#[derive(Debug, Clone, Default)]
struct Ref {
    /// Live process -> (table, rlimit).
    procs: BTreeMap<&'static str, (usize, u64)>,
    used: BTreeSet<&'static str>,
    tables: BTreeMap<usize, Table>,
    next_table: usize,
    files: Vec<Kind>,
    /// Receiving socket file -> messages (the file ids in flight).
    queues: BTreeMap<usize, VecDeque<Vec<usize>>>,
    last: Prediction,
}

impl Ref {
    fn table(&self, p: &str) -> &Table {
        &self.tables[&self.procs[p].0]
    }

    fn file_at(&self, p: &str, fd: i32) -> Option<usize> {
        self.table(p).get(&fd).map(|&(f, _)| f)
    }

    fn lowest_free(t: &Table, min: i32, limit: u64) -> Option<i32> {
        (min..)
            .find(|fd| !t.contains_key(fd))
            .filter(|&fd| (fd as u64) < limit)
    }

    fn in_some_table(&self, f: usize) -> bool {
        self.tables
            .values()
            .any(|t| t.values().any(|&(g, _)| g == f))
    }

    fn new_file(&mut self, k: Kind) -> usize {
        self.files.push(k);
        self.files.len() - 1
    }

    /// Gives `p` a private copy of its table if it shares it.
    fn unshare(&mut self, p: &'static str) {
        let (t, lim) = self.procs[p];
        if self.procs.values().filter(|(u, _)| *u == t).count() > 1 {
            let copy = self.tables[&t].clone();
            self.tables.insert(self.next_table, copy);
            self.procs.insert(p, (self.next_table, lim));
            self.next_table += 1;
        }
    }

    /// The sendfds/recvfds socket and whether the reference can predict the
    /// call (see the module comment).
    fn predictable(&self, p: &str, call: &Call) -> bool {
        match call {
            Call::Sendfds { sock, fds } => match self.file_at(p, *sock).map(|f| self.files[f]) {
                Some(Kind::Sock { peer })
                    if fds.iter().all(|&fd| self.file_at(p, fd).is_some()) =>
                {
                    self.in_some_table(peer)
                }
                _ => true,
            },
            Call::Recvfds { sock, .. } => match self.file_at(p, *sock) {
                Some(f) => match self.files[f] {
                    Kind::Sock { peer } => {
                        self.queues.get(&f).is_some_and(|q| !q.is_empty())
                            || self.in_some_table(peer)
                    }
                    _ => true,
                },
                None => true,
            },
            _ => true,
        }
    }

    fn predict(&mut self, p: &'static str, call: &Call) -> Prediction {
        use Prediction::Exact;
        let ok = |v: Vec<i64>| Exact(Ok(Ret::Ints(v)));
        let err = |e| Exact(Err(e));
        let (t, lim) = self.procs[p];
        match call {
            Call::Open { flags, .. } => match Ref::lowest_free(&self.tables[&t], 0, lim) {
                None => err(Errno::EMFILE),
                Some(fd) => {
                    let f = self.new_file(Kind::Vnode);
                    self.tables
                        .get_mut(&t)
                        .unwrap()
                        .insert(fd, (f, flags.contains(OFlags::CLOEXEC)));
                    ok(vec![fd.into()])
                }
            },
            Call::Close { fd } => match self.tables.get_mut(&t).unwrap().remove(fd) {
                Some(_) => ok(vec![0]),
                None => err(Errno::EBADF),
            },
            Call::Dup { fd } => self.dup(t, lim, *fd, 0, false),
            Call::Fcntl {
                fd,
                cmd: FcntlCmd::DupFd { min, cloexec },
            } => {
                if self.file_at(p, *fd).is_none() {
                    err(Errno::EBADF)
                } else if *min < 0 || *min as u64 >= lim {
                    err(Errno::EINVAL)
                } else {
                    self.dup(t, lim, *fd, *min, *cloexec)
                }
            }
            Call::Fcntl {
                fd,
                cmd: FcntlCmd::GetFd,
            } => match self.table(p).get(fd) {
                Some(&(_, c)) => ok(vec![c.into()]),
                None => err(Errno::EBADF),
            },
            Call::Fcntl {
                fd,
                cmd: FcntlCmd::SetFd { cloexec },
            } => match self.tables.get_mut(&t).unwrap().get_mut(fd) {
                Some(e) => {
                    e.1 = *cloexec;
                    ok(vec![0])
                }
                None => err(Errno::EBADF),
            },
            Call::Dup2 { old, new } if old == new => match self.file_at(p, *old) {
                Some(_) => ok(vec![(*old).into()]),
                None => err(Errno::EBADF),
            },
            Call::Dup2 { old, new } => self.dup3(t, lim, *old, *new, false),
            Call::Dup3 { old, new, cloexec } => {
                if old == new {
                    err(Errno::EINVAL)
                } else {
                    self.dup3(t, lim, *old, *new, *cloexec)
                }
            }
            Call::CloseRange {
                lo,
                hi,
                unshare,
                cloexec,
            } => {
                if lo > hi {
                    return err(Errno::EINVAL);
                }
                if *unshare {
                    self.unshare(p);
                }
                let t = self.procs[p].0;
                let table = self.tables.get_mut(&t).unwrap();
                let in_range: Vec<i32> = table
                    .keys()
                    .copied()
                    .filter(|&fd| fd as u32 >= *lo && fd as u32 <= *hi)
                    .collect();
                for fd in in_range {
                    if *cloexec {
                        table.get_mut(&fd).unwrap().1 = true;
                    } else {
                        table.remove(&fd);
                    }
                }
                ok(vec![0])
            }
            Call::Pipe { cloexec, .. }
            | Call::Socketpair {
                flags: SockFlags { cloexec, .. },
                ..
            } => {
                let table = &self.tables[&t];
                let Some(a) = Ref::lowest_free(table, 0, lim) else {
                    return err(Errno::EMFILE);
                };
                let Some(b) = (a + 1..)
                    .find(|fd| !table.contains_key(fd))
                    .filter(|&b| (b as u64) < lim)
                else {
                    return err(Errno::EMFILE);
                };
                let (fa, fb) = if matches!(call, Call::Pipe { .. }) {
                    (self.new_file(Kind::Pipe), self.new_file(Kind::Pipe))
                } else {
                    let n = self.files.len();
                    (
                        self.new_file(Kind::Sock { peer: n + 1 }),
                        self.new_file(Kind::Sock { peer: n }),
                    )
                };
                let table = self.tables.get_mut(&t).unwrap();
                table.insert(a, (fa, *cloexec));
                table.insert(b, (fb, *cloexec));
                ok(vec![a.into(), b.into()])
            }
            Call::Socket { ty, flags } => match Ref::lowest_free(&self.tables[&t], 0, lim) {
                None => err(Errno::EMFILE),
                Some(fd) => {
                    let f = self.new_file(Kind::Lone(*ty));
                    let table = self.tables.get_mut(&t).unwrap();
                    table.insert(fd, (f, flags.cloexec));
                    ok(vec![fd.into()])
                }
            },
            Call::EpollCreate { cloexec } => match Ref::lowest_free(&self.tables[&t], 0, lim) {
                None => err(Errno::EMFILE),
                Some(fd) => {
                    let f = self.new_file(Kind::Epoll);
                    self.tables.get_mut(&t).unwrap().insert(fd, (f, *cloexec));
                    ok(vec![fd.into()])
                }
            },
            Call::EpollCtl { epfd, fd, .. } => {
                let (Some(e), Some(f)) = (self.file_at(p, *epfd), self.file_at(p, *fd)) else {
                    return err(Errno::EBADF);
                };
                if self.files[f] == Kind::Vnode {
                    err(Errno::EPERM)
                } else if e == f || self.files[e] != Kind::Epoll {
                    err(Errno::EINVAL)
                } else {
                    // EINVAL: too many wakeup paths.
                    Prediction::OkOr(vec![
                        Errno::EEXIST,
                        Errno::ENOENT,
                        Errno::ELOOP,
                        Errno::EINVAL,
                    ])
                }
            }
            Call::Sendfds { sock, fds } => {
                let Some(s) = self.file_at(p, *sock) else {
                    return err(Errno::EBADF);
                };
                let peer = match self.files[s] {
                    Kind::Sock { peer } => Some(peer),
                    // A seqpacket socket checks its connection first.
                    Kind::Lone(SockType::Seqpacket) => return err(Errno::ENOTCONN),
                    Kind::Lone(_) => None,
                    _ => return err(Errno::ENOTSOCK),
                };
                let Some(files) = fds
                    .iter()
                    .map(|&fd| self.file_at(p, fd))
                    .collect::<Option<Vec<_>>>()
                else {
                    return err(Errno::EBADF);
                };
                // Stream and datagram sockets look at the files, then for
                // a peer.
                let Some(peer) = peer else {
                    return err(Errno::ENOTCONN);
                };
                self.queues.entry(peer).or_default().push_back(files);
                ok(vec![0])
            }
            Call::Recvfds { sock, cloexec, .. } => {
                let Some(s) = self.file_at(p, *sock) else {
                    return err(Errno::EBADF);
                };
                match self.files[s] {
                    Kind::Sock { .. } => {}
                    Kind::Lone(SockType::Stream) => return err(Errno::EINVAL),
                    Kind::Lone(SockType::Seqpacket) => return err(Errno::ENOTCONN),
                    Kind::Lone(SockType::Dgram) => return err(Errno::EAGAIN),
                    _ => return err(Errno::ENOTSOCK),
                }
                let Some(msg) = self.queues.get_mut(&s).and_then(|q| q.pop_front()) else {
                    return err(Errno::EAGAIN);
                };
                let table = self.tables.get_mut(&t).unwrap();
                let mut got = Vec::new();
                let mut truncated = false;
                for f in msg {
                    match Ref::lowest_free(table, 0, lim) {
                        Some(fd) => {
                            table.insert(fd, (f, *cloexec));
                            got.push(fd.into());
                        }
                        None => {
                            // The rest are closed, and Linux sets MSG_CTRUNC.
                            truncated = true;
                            break;
                        }
                    }
                }
                Exact(Ok(Ret::received(got, truncated)))
            }
            Call::Fork { child } | Call::CloneFiles { child } => {
                let child = NAMES.iter().copied().find(|n| n == child).unwrap();
                self.used.insert(child);
                let table = if matches!(call, Call::Fork { .. }) {
                    let copy = self.tables[&t].clone();
                    self.tables.insert(self.next_table, copy);
                    self.next_table += 1;
                    self.next_table - 1
                } else {
                    t
                };
                self.procs.insert(child, (table, lim));
                ok(vec![0])
            }
            Call::UnshareFiles => {
                self.unshare(p);
                ok(vec![0])
            }
            Call::Exec => {
                self.unshare(p);
                let t = self.procs[p].0;
                self.tables.get_mut(&t).unwrap().retain(|_, (_, c)| !*c);
                ok(vec![0])
            }
            Call::Exit => {
                self.procs.remove(p);
                if !self.procs.values().any(|(u, _)| *u == t) {
                    self.tables.remove(&t);
                }
                ok(vec![0])
            }
            Call::Rlimit { limit } => {
                self.procs.get_mut(p).unwrap().1 = *limit;
                ok(vec![0])
            }
            _ => Prediction::None,
        }
    }

    fn dup(&mut self, t: usize, lim: u64, fd: i32, min: i32, cloexec: bool) -> Prediction {
        let table = self.tables.get_mut(&t).unwrap();
        let Some(&(f, _)) = table.get(&fd) else {
            return Prediction::Exact(Err(Errno::EBADF));
        };
        match Ref::lowest_free(table, min, lim) {
            None => Prediction::Exact(Err(Errno::EMFILE)),
            Some(n) => {
                table.insert(n, (f, cloexec));
                Prediction::Exact(Ok(Ret::int(n.into())))
            }
        }
    }

    fn dup3(&mut self, t: usize, lim: u64, old: i32, new: i32, cloexec: bool) -> Prediction {
        let table = self.tables.get_mut(&t).unwrap();
        if new < 0 || new as u64 >= lim {
            return Prediction::Exact(Err(Errno::EBADF));
        }
        let Some(&(f, _)) = table.get(&old) else {
            return Prediction::Exact(Err(Errno::EBADF));
        };
        table.insert(new, (f, cloexec));
        Prediction::Exact(Ok(Ret::int(new.into())))
    }
}

fn fd() -> impl Strategy<Value = i32> {
    prop_oneof![9 => 0..8i32, 1 => Just(-1), 1 => 8..12i32]
}

fn call(children: Vec<&'static str>) -> BoxedStrategy<Call> {
    let mut options: Vec<BoxedStrategy<Call>> = vec![
        (
            prop_oneof![
                Just(OFlags::RDONLY),
                Just(OFlags::WRONLY),
                Just(OFlags::RDWR)
            ],
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(acc, cloexec, regular)| {
                let flags = if cloexec { acc | OFlags::CLOEXEC } else { acc };
                let (path, flags) = if regular {
                    ("f".to_string(), flags | OFlags::CREAT)
                } else {
                    ("/dev/null".to_string(), flags)
                };
                Call::Open {
                    path,
                    flags,
                    mode: 0o644,
                }
            })
            .boxed(),
        fd().prop_map(|fd| Call::Close { fd }).boxed(),
        fd().prop_map(|fd| Call::Dup { fd }).boxed(),
        (fd(), fd())
            .prop_map(|(old, new)| Call::Dup2 { old, new })
            .boxed(),
        (fd(), fd(), any::<bool>())
            .prop_map(|(old, new, cloexec)| Call::Dup3 { old, new, cloexec })
            .boxed(),
        (fd(), -1..10i32, any::<bool>())
            .prop_map(|(fd, min, cloexec)| Call::Fcntl {
                fd,
                cmd: FcntlCmd::DupFd { min, cloexec },
            })
            .boxed(),
        fd().prop_map(|fd| Call::Fcntl {
            fd,
            cmd: FcntlCmd::GetFd,
        })
        .boxed(),
        (fd(), any::<bool>())
            .prop_map(|(fd, cloexec)| Call::Fcntl {
                fd,
                cmd: FcntlCmd::SetFd { cloexec },
            })
            .boxed(),
        (
            0..8u32,
            prop_oneof![0..10u32, Just(u32::MAX)],
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(lo, hi, unshare, cloexec)| Call::CloseRange {
                lo,
                hi,
                unshare,
                cloexec,
            })
            .boxed(),
        (0..3u8, any::<bool>())
            .prop_map(|(t, cloexec)| Call::Socket {
                ty: [SockType::Stream, SockType::Dgram, SockType::Seqpacket][usize::from(t)],
                flags: SockFlags {
                    cloexec,
                    nonblock: false,
                },
            })
            .boxed(),
        any::<bool>()
            .prop_map(|cloexec| Call::Pipe {
                cloexec,
                nonblock: false,
            })
            .boxed(),
        (any::<bool>(), any::<bool>())
            .prop_map(|(dgram, cloexec)| Call::Socketpair {
                ty: if dgram {
                    SockType::Dgram
                } else {
                    SockType::Stream
                },
                flags: SockFlags {
                    cloexec,
                    nonblock: false,
                },
            })
            .boxed(),
        (fd(), proptest::collection::vec(fd(), 1..4))
            .prop_map(|(sock, fds)| Call::Sendfds { sock, fds })
            .boxed(),
        (fd(), any::<bool>())
            .prop_map(|(sock, cloexec)| Call::Recvfds {
                sock,
                max: 253,
                cloexec,
            })
            .boxed(),
        any::<bool>()
            .prop_map(|cloexec| Call::EpollCreate { cloexec })
            .boxed(),
        (fd(), 0..3u8, fd())
            .prop_map(|(epfd, op, fd)| Call::EpollCtl {
                epfd,
                op: [EpollOp::Add, EpollOp::Del, EpollOp::Mod][usize::from(op)],
                fd,
                events: Events::IN,
            })
            .boxed(),
        Just(Call::UnshareFiles).boxed(),
        Just(Call::Exec).boxed(),
        Just(Call::Exit).boxed(),
        (0..12u64).prop_map(|limit| Call::Rlimit { limit }).boxed(),
    ];
    if !children.is_empty() {
        let c = children.clone();
        options.push(
            proptest::sample::select(c)
                .prop_map(|child| Call::Fork {
                    child: child.into(),
                })
                .boxed(),
        );
        options.push(
            proptest::sample::select(children)
                .prop_map(|child| Call::CloneFiles {
                    child: child.into(),
                })
                .boxed(),
        );
    }
    proptest::strategy::Union::new(options).boxed()
}

impl ReferenceStateMachine for Ref {
    type State = Ref;
    type Transition = Tr;

    fn init_state() -> BoxedStrategy<Ref> {
        Just(Ref::default()).boxed()
    }

    fn transitions(state: &Ref) -> BoxedStrategy<Tr> {
        let unused: Vec<&'static str> = NAMES
            .iter()
            .copied()
            .filter(|n| !state.used.contains(n))
            .collect();
        let live: Vec<&'static str> = state.procs.keys().copied().collect();
        let spawn = (!unused.is_empty()).then(|| {
            proptest::sample::select(unused.clone())
                .prop_map(Tr::Spawn)
                .boxed()
        });
        if live.is_empty() {
            return spawn.unwrap_or_else(|| Just(Tr::Nop).boxed());
        }
        let calls = (proptest::sample::select(live), call(unused))
            .prop_map(|(p, c)| Tr::Call(p, c))
            .boxed();
        match spawn {
            Some(s) => prop_oneof![1 => s, 12 => calls].boxed(),
            None => calls,
        }
    }

    fn preconditions(state: &Ref, tr: &Tr) -> bool {
        match tr {
            Tr::Spawn(n) => !state.used.contains(n),
            Tr::Nop => true,
            Tr::Call(p, c) => {
                state.procs.contains_key(p)
                    && c.child().is_none_or(|ch| !state.used.contains(ch))
                    && state.predictable(p, c)
            }
        }
    }

    fn apply(mut state: Ref, tr: &Tr) -> Ref {
        state.last = match tr {
            Tr::Spawn(n) => {
                state.used.insert(n);
                state.tables.insert(state.next_table, Table::new());
                state
                    .procs
                    .insert(n, (state.next_table, crate::limits::DEFAULT_RLIMIT));
                state.next_table += 1;
                Prediction::None
            }
            Tr::Call(p, c) => state.predict(p, c),
            Tr::Nop => Prediction::None,
        };
        state
    }
}

struct ModelUnderTest {
    world: World,
    pids: BTreeMap<&'static str, Pid>,
}

/// The world under test; with `PLANTED`, every table it makes carries the
/// planted bug (`dup` forgets a reference), which the test must catch.
struct Sut<const PLANTED: bool>;

/// The model as written.
type Honest = Sut<false>;
/// The model with the planted bug.
type Planted = Sut<true>;

impl<const PLANTED: bool> StateMachineTest for Sut<PLANTED> {
    type SystemUnderTest = ModelUnderTest;
    type Reference = Ref;

    fn init_test(_: &Ref) -> ModelUnderTest {
        let mut world = World::new();
        if PLANTED {
            world.plant(crate::mutant::Mutant::DupForgetsRef);
        }
        ModelUnderTest {
            world,
            pids: BTreeMap::new(),
        }
    }

    fn apply(mut sut: ModelUnderTest, r: &Ref, tr: Tr) -> ModelUnderTest {
        match tr {
            Tr::Spawn(n) => {
                let pid = sut.world.spawn(n).expect("fresh name");
                sut.pids.insert(n, pid);
            }
            Tr::Nop => {}
            Tr::Call(p, c) => {
                let out = sut.world.call(sut.pids[p], &c);
                match &r.last {
                    Prediction::Exact(want) => assert_eq!(&out, want, "{p}: {c:?}"),
                    Prediction::OkOr(errs) => {
                        assert!(
                            out.is_ok() || errs.contains(out.as_ref().unwrap_err()),
                            "{p}: {c:?} gave {out:?}"
                        )
                    }
                    Prediction::None => {}
                }
                if let Some(child) = c.child() {
                    let child = NAMES.iter().copied().find(|n| *n == child).unwrap();
                    sut.pids
                        .insert(child, sut.world.pid(child).expect("child exists"));
                }
                if c == Call::Exit {
                    sut.pids.remove(p);
                }
            }
        }
        sut
    }

    fn check_invariants(sut: &ModelUnderTest, r: &Ref) {
        if let Err(v) = invariants::check_all(&sut.world) {
            panic!("{v}");
        }
        // The same tables, up to a renaming of files, shared the same way.
        let mut to_ref: BTreeMap<FileId, usize> = BTreeMap::new();
        let mut to_model: BTreeMap<usize, FileId> = BTreeMap::new();
        let names: Vec<&&str> = r.procs.keys().collect();
        assert_eq!(sut.pids.keys().collect::<Vec<_>>(), names, "live processes");
        for (name, &pid) in &sut.pids {
            let model: Vec<(i32, FileId, bool)> = sut
                .world
                .table_of(pid)
                .installed_all()
                .into_iter()
                .map(|(fd, file, cloexec)| (fd.get() as i32, file, cloexec))
                .collect();
            let reference: Vec<(i32, usize, bool)> = r
                .table(name)
                .iter()
                .map(|(&fd, &(f, c))| (fd, f, c))
                .collect();
            assert_eq!(
                model.iter().map(|x| (x.0, x.2)).collect::<Vec<_>>(),
                reference.iter().map(|x| (x.0, x.2)).collect::<Vec<_>>(),
                "descriptors of {name}"
            );
            for ((fd, m, _), (_, rf, _)) in model.iter().zip(&reference) {
                assert_eq!(
                    *to_ref.entry(*m).or_insert(*rf),
                    *rf,
                    "{name}:{fd} names another file"
                );
                assert_eq!(
                    *to_model.entry(*rf).or_insert(*m),
                    *m,
                    "{name}:{fd} names another file"
                );
            }
            for (other, &q) in &sut.pids {
                let shared = sut.world.proc(pid).table_id() == sut.world.proc(q).table_id();
                assert_eq!(
                    shared,
                    r.procs[name].0 == r.procs[other].0,
                    "{name} and {other} sharing"
                );
            }
        }
    }
}

prop_state_machine! {
    #![proptest_config(Config {
        cases: std::env::var("FDLAB_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256),
        failure_persistence: None,
        .. Config::default()
    })]
    #[test]
    fn model_agrees_with_reference(sequential 1..60 => Honest);
}

/// The planted bug (`dup` forgets a reference) must make the test above
/// fail: a test that cannot fail would pass here too. The bug rides in the
/// world under test's tables, so tests running beside this one do not see
/// it.
#[test]
fn planted_bug_is_caught() {
    let config = Config {
        cases: 256,
        // Some shrinking is needed: proptest-state-machine's value tree
        // expects `simplify` before it reports a failure.
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config.clone());
    let caught = runner
        .run(
            &Ref::sequential_strategy(1..60),
            |(state, transitions, seen)| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    Planted::test_sequential(config.clone(), state, transitions, seen)
                }))
                .map_err(|_| TestCaseError::fail("the model diverged"))
            },
        )
        .is_err();
    assert!(caught, "the planted bug went unnoticed");
}
