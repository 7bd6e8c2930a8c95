//! Stress test of the concurrent descriptor table (`fdlab_model::mt`):
//! four threads share two tables and run random calls for about two
//! seconds: lookups whose references they keep across other threads'
//! closes, larval files kept open while others `dup2` onto them, files
//! moved between tables, private copies read on the fast path. They also
//! share a third table that one of them keeps replacing by fork's copy of
//! a newly filled one, whose slots name their files from the copy's base
//! until a thread writes them. Between
//! rounds the threads stop, and every invariant is checked at quiescence;
//! at the end everything is dropped and every file must have been closed
//! exactly once.
//!
//! Loom proves small races exhaustively; this finds what only shows at
//! scale (the chunk boundary at 64, many files, arc-swap's real code).
//! Under `--cfg loom` the table is built on loom's primitives, which only
//! run inside a loom model, so this test is left out there.

#![cfg(not(loom))]

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use fdlab_model::mt::{fdget, invariants, Fdget, File, FileRef, Filedesc, Hold, Larval};
use fdlab_model::{Errno, Fd};

const THREADS: usize = 4;
const ROUNDS: usize = 8;
const ROUND: Duration = Duration::from_millis(250);
/// The numbers the threads aim at: across the first two chunks (64, 128).
const FDS: u64 = 80;
const LIMIT: u32 = 160;
/// References a thread keeps at most.
const KEEP: usize = 6;

/// xorshift64*: deterministic per thread; the interleaving is not anyway.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn fd(&mut self) -> Fd {
        Fd::new(self.below(FDS) as u32)
    }
}

#[derive(Default, Debug)]
struct Stats {
    ops: u64,
    lookups_ok: u64,
    ebusy: u64,
    /// A reference kept across the close of its descriptor ran closef's
    /// work when it was dropped: the file outlived its descriptor.
    closed_by_holder: u64,
    fast_path: u64,
    /// Lookups that found their file in a copied table's base.
    through_base: u64,
    /// Of those references, the ones that outlived their descriptor.
    base_closed_by_holder: u64,
}

/// One thread's state, kept across rounds.
struct Worker<'t> {
    id: u64,
    rng: Rng,
    refs: Vec<FileRef<u64>>,
    holds: Vec<Hold<u64>>,
    larval: Option<Larval<'t, u64>>,
    /// Every file this worker made (memory only: these do not count).
    files: Vec<Arc<File<u64>>>,
    /// A private copy (fork), used on the fast path.
    private: Arc<Filedesc<u64>>,
    stats: Stats,
}

impl<'t> Worker<'t> {
    fn step(&mut self, tables: &'t [Arc<Filedesc<u64>>], copy: &ArcSwap<Filedesc<u64>>) {
        let t: &'t Filedesc<u64> = &tables[self.rng.below(tables.len() as u64) as usize];
        self.stats.ops += 1;
        if self.id == 0 && self.rng.below(512) == 0 {
            // fork of a newly filled table; the filled one goes (fdfree),
            // and so, once no thread holds it, does the copy replaced.
            let full = Filedesc::new(LIMIT);
            for fd in 0..FDS {
                let l = full.falloc(fd).unwrap();
                self.files.push(Arc::clone(l.arc()));
                drop(l.fdinsert(false));
            }
            copy.store(Arc::new(full.fdcopy()));
            return;
        }
        // A third of the calls that need no larval file go to the copy.
        let c = copy.load_full();
        let u: &Filedesc<u64> = if self.rng.below(3) == 0 { &c } else { t };
        match self.rng.below(12) {
            0 | 1 if self.larval.is_none() => {
                let data = self.id << 32 | self.stats.ops;
                match t.falloc(data) {
                    Ok(l) => {
                        self.files.push(Arc::clone(l.arc()));
                        if self.rng.below(2) == 0 {
                            // Keep it larval for a while: others may dup2 onto it.
                            self.larval = Some(l);
                        } else {
                            self.keep_hold(l.fdinsert(false));
                        }
                    }
                    Err(e) => assert_eq!(e, Errno::EMFILE),
                }
            }
            0 | 1 => {
                let l = self.larval.take().expect("checked by the arm above");
                if self.rng.below(4) == 0 {
                    l.fdabort();
                } else {
                    let h = l.fdinsert(self.rng.below(2) == 0);
                    self.keep_hold(h);
                }
            }
            2 => {
                let r = u.fdrelease(self.rng.fd());
                assert!(matches!(r, Ok(()) | Err(Errno::EBADF)), "{r:?}");
            }
            3 => match u.dup2(self.rng.fd(), self.rng.fd()) {
                Ok(_) | Err(Errno::EBADF) => {}
                Err(Errno::EBUSY) => self.stats.ebusy += 1,
                Err(e) => panic!("dup2: {e}"),
            },
            4 => {
                let min = self.rng.below(FDS) as u32;
                let r = u.dup(self.rng.fd(), min, false);
                assert!(
                    matches!(r, Ok(_) | Err(Errno::EBADF | Errno::EMFILE)),
                    "{r:?}"
                );
            }
            5 | 6 => match u.fd_getfile(self.rng.fd()) {
                Ok(f) => {
                    self.stats.through_base += u64::from(f.through_base());
                    // The use: deref checks the file is alive.
                    assert!(
                        *f.data() >> 32 < THREADS as u64,
                        "{f:?} holds {:#x}",
                        f.data()
                    );
                    self.stats.lookups_ok += 1;
                    if self.refs.len() < KEEP {
                        self.refs.push(f);
                    }
                }
                Err(e) => assert_eq!(e, Errno::EBADF),
            },
            7 if !self.refs.is_empty() => {
                let i = self.rng.below(self.refs.len() as u64) as usize;
                let f = self.refs.swap_remove(i);
                let (mem, based) = (Arc::clone(f.arc()), f.through_base());
                drop(f);
                if mem.is_closed() {
                    self.stats.closed_by_holder += 1;
                    self.stats.base_closed_by_holder += u64::from(based);
                }
            }
            8 if !self.refs.is_empty() => {
                // Keep a lookup's reference longer, or send it to a table.
                let h = self.refs.swap_remove(0).into_hold();
                if self.rng.below(2) == 0 {
                    self.keep_hold(h);
                } else {
                    let r = u.fdinstall(h, false);
                    assert!(matches!(r, Ok(_) | Err(Errno::EMFILE)), "{r:?}");
                }
            }
            9 => {
                if self.rng.below(16) == 0 {
                    // fork: a private copy; the old one is freed (fdfree).
                    self.private = Arc::new(t.fdcopy());
                }
                let fd = self.rng.fd();
                match fdget(&mut self.private, fd) {
                    Ok(Fdget::Borrowed(f)) => {
                        assert!(f.count() >= 1 && !f.is_closed(), "{f:?}");
                        self.stats.fast_path += 1;
                    }
                    Ok(Fdget::Counted(_)) => panic!("a private table is shared"),
                    Err(e) => assert_eq!(e, Errno::EBADF),
                }
            }
            10 => {
                let r = u.set_cloexec(self.rng.fd(), true);
                assert!(matches!(r, Ok(()) | Err(Errno::EBADF)), "{r:?}");
            }
            _ => {
                if let Some(h) = self.holds.pop() {
                    drop(h);
                }
            }
        }
    }

    fn keep_hold(&mut self, h: Hold<u64>) {
        if self.holds.len() < KEEP {
            self.holds.push(h);
        }
    }
}

/// Every invariant, at quiescence.
fn check(tables: &[Arc<Filedesc<u64>>], copy: &Filedesc<u64>, workers: &[Worker<'_>]) {
    let mut all: Vec<&Filedesc<u64>> = tables.iter().map(|t| &**t).collect();
    all.push(copy);
    all.extend(workers.iter().map(|w| &*w.private));
    let files: Vec<Arc<File<u64>>> = workers
        .iter()
        .flat_map(|w| w.files.iter().cloned())
        .collect();
    let mut held: Vec<&File<u64>> = Vec::new();
    for w in workers {
        held.extend(w.refs.iter().map(|r| &**r.arc()));
        held.extend(w.holds.iter().map(|h| &**h.arc()));
        held.extend(w.larval.iter().map(|l| &**l.arc()));
    }
    if let Err(v) = invariants::check_all(&all, &files, &held) {
        panic!("{v}");
    }
}

#[test]
fn threads_sharing_tables_keep_every_invariant() {
    let tables: Vec<Arc<Filedesc<u64>>> = (0..2).map(|_| Arc::new(Filedesc::new(LIMIT))).collect();
    let copy = ArcSwap::from_pointee(Filedesc::new(LIMIT));
    let mut workers: Vec<Worker<'_>> = (0..THREADS as u64)
        .map(|id| Worker {
            id,
            rng: Rng(0x9e37_79b9_7f4a_7c15 ^ ((id + 1) * 0x1234_5678_9abc_def1)),
            refs: Vec::new(),
            holds: Vec::new(),
            larval: None,
            files: Vec::new(),
            private: Arc::new(Filedesc::new(LIMIT)),
            stats: Stats::default(),
        })
        .collect();
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let deadline = Instant::now() + ROUND;
        std::thread::scope(|s| {
            for w in workers.iter_mut() {
                let (tables, copy) = (&tables, &copy);
                s.spawn(move || {
                    while Instant::now() < deadline {
                        for _ in 0..64 {
                            w.step(tables, copy);
                        }
                    }
                });
            }
        });
        check(&tables, &copy.load(), &workers);
        // Dead files were checked once; keep the lists short.
        for w in &mut workers {
            w.files.retain(|f| !f.is_closed());
        }
    }
    let elapsed = started.elapsed();
    let mut total = Stats::default();
    let mut files = Vec::new();
    for w in workers {
        total.ops += w.stats.ops;
        total.lookups_ok += w.stats.lookups_ok;
        total.ebusy += w.stats.ebusy;
        total.closed_by_holder += w.stats.closed_by_holder;
        total.fast_path += w.stats.fast_path;
        total.through_base += w.stats.through_base;
        total.base_closed_by_holder += w.stats.base_closed_by_holder;
        files.extend(w.files);
        // Dropping the rest: references (FRELE), the larval file (fdabort),
        // the private table (fdfree).
    }
    drop(tables);
    drop(copy);
    eprintln!("mt_stress: {total:?} in {elapsed:?}");
    for f in &files {
        assert_eq!(
            (f.count(), f.closes()),
            (0, 1),
            "{f:?} after everything was dropped"
        );
    }
    invariants::closef_once(&files).unwrap();
    // The races the test exists for happened.
    assert!(total.ebusy > 0, "no dup2 met a larval slot: {total:?}");
    assert!(
        total.closed_by_holder > 0,
        "no reference outlived its descriptor: {total:?}"
    );
    assert!(total.lookups_ok > 1000 && total.fast_path > 0, "{total:?}");
    assert!(
        total.base_closed_by_holder > 0,
        "no reference found through a copy's base outlived its descriptor: {total:?}"
    );
}
