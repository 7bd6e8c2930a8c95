//! Several threads share one tracker for a few seconds (`FDLAB_STRESS_SECS`,
//! default 3): each appends to files of its own, reopens them, reads files
//! that every thread shares (the same handles, used at once, some unlinked
//! midway), holds two guards at a time, and opens and closes unsuspendable
//! pipes. A monitor thread checks the tracker's invariants meanwhile. At the
//! end every byte is where it should be, every get is counted, and nothing
//! is left behind.
//!
//! The budget is enforced by the kernel: the helper process (the test runs
//! alone in one, see `support/mod.rs`) lowers its `RLIMIT_NOFILE` so
//! that exactly `CAPACITY` descriptor numbers are free. The kernel hands out
//! the lowest free number, so one descriptor more than the capacity, even
//! for an instant, would fail with `EMFILE`, and the test with it.
//! (Counting `/proc/self/fd` from a thread is not a snapshot while others
//! open and close: we saw it report one more descriptor than an
//! over-approximating counter in the tracker ever held.)

mod support;

use std::collections::BTreeSet;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use fdlab_tracker::ErrorKind;
use fdlab_tracker::{Directory, FdTracker, FsHandle, TrackerError};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::process::{Resource, Rlimit};
use support::{fd_count, isolated, TempDir};

const THREADS: usize = 4;
const CAPACITY: usize = 6;
const OWN: usize = 6;
const SHARED: usize = 8;
const SHARED_LEN: usize = 4096;
/// The workers go on past the deadline until this many gets were made in
/// all, so that a slow or busy machine still runs the races the test is
/// about (a fixed time alone did too little when the machine was loaded).
const MIN_GETS: u64 = 2000;
/// ... but never longer than this past the deadline.
const GRACE: Duration = Duration::from_secs(60);

/// xorshift64: each thread's operations, reproducible from its number.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below as u64) as usize
    }
}

/// The bytes of shared file `i`.
fn shared_byte(i: usize, offset: usize) -> u8 {
    (i * 31 + offset * 7) as u8
}

#[derive(Debug, Default)]
struct Tally {
    gets: u64,
    no_room: u64,
    unsuspendable_no_room: u64,
    reads: u64,
}

/// A get that may find every descriptor in use: counted, not fatal.
fn counted<T>(tally: &mut Tally, r: Result<T, TrackerError>) -> Option<T> {
    tally.gets += 1;
    match r {
        Ok(g) => Some(g),
        Err(e) if e.kind() == ErrorKind::NoRoom => {
            tally.no_room += 1;
            None
        }
        Err(e) => panic!("get failed: {e}"),
    }
}

fn open_own(t: &FdTracker, dir: &Directory, name: &str) -> FsHandle {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::APPEND | OFlags::CLOEXEC;
    loop {
        match t.open(dir, name, flags, Mode::RUSR | Mode::WUSR) {
            Ok(h) => return h,
            Err(e) if e.kind() == ErrorKind::NoRoom => thread::yield_now(),
            Err(e) => panic!("open {name}: {e}"),
        }
    }
}

fn read_shared(tally: &mut Tally, rng: &mut Rng, shared: &[Arc<FsHandle>]) {
    let i = rng.next(SHARED);
    let offset = rng.next(SHARED_LEN);
    let h = &shared[i];
    // Half through a borrowed guard, half through an owned one.
    let mut buf = [0u8; 64];
    let n = if rng.next(2) == 0 {
        let Some(g) = counted(tally, h.get_fd()) else {
            return;
        };
        rustix::io::pread(&g, &mut buf, offset as u64).unwrap()
    } else {
        let Some(g) = counted(tally, h.get_fd_arc()) else {
            return;
        };
        rustix::io::pread(&g, &mut buf, offset as u64).unwrap()
    };
    assert_eq!(n, buf.len().min(SHARED_LEN - offset));
    for (k, &b) in buf[..n].iter().enumerate() {
        assert_eq!(
            b,
            shared_byte(i, offset + k),
            "shared-{i} at {}",
            offset + k
        );
    }
    tally.reads += 1;
}

#[allow(clippy::too_many_arguments)]
fn worker(
    me: usize,
    t: &FdTracker,
    dir: &Directory,
    shared: &[Arc<FsHandle>],
    deadline: Instant,
    start: &Barrier,
    all_gets: &AtomicU64,
) -> (Tally, Vec<Vec<u8>>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (me as u64 + 1));
    let mut tally = Tally::default();
    let names: Vec<String> = (0..OWN).map(|i| format!("t{me}-f{i}")).collect();
    let mut own: Vec<Option<FsHandle>> = names.iter().map(|n| Some(open_own(t, dir, n))).collect();
    let mut expected = vec![Vec::new(); OWN];
    let mut pipes: Vec<OwnedFd> = Vec::new();
    start.wait();
    loop {
        let now = Instant::now();
        let enough = all_gets.load(Ordering::Relaxed) >= MIN_GETS;
        if (now >= deadline && enough) || now >= deadline + GRACE {
            break;
        }
        let before = tally.gets;
        match rng.next(12) {
            0..=4 => {
                let i = rng.next(OWN);
                let h = own[i].as_ref().expect("reopened at once");
                let chunk: Vec<u8> = (0..1 + rng.next(16)).map(|_| rng.next(256) as u8).collect();
                if let Some(g) = counted(&mut tally, h.get_fd()) {
                    assert_eq!(rustix::io::write(&g, &chunk).unwrap(), chunk.len());
                    expected[i].extend_from_slice(&chunk);
                }
            }
            5..=7 => read_shared(&mut tally, &mut rng, shared),
            8 => {
                // Two guards at once: an own file, and a shared one.
                let i = rng.next(OWN);
                let h = own[i].as_ref().expect("reopened at once");
                if let Some(g) = counted(&mut tally, h.get_fd()) {
                    read_shared(&mut tally, &mut rng, shared);
                    assert_eq!(rustix::io::write(&g, &[me as u8]).unwrap(), 1);
                    expected[i].push(me as u8);
                }
            }
            9 => {
                let i = rng.next(OWN);
                if let Some(h) = own[i].take() {
                    h.close().unwrap();
                }
                own[i] = Some(open_own(t, dir, &names[i]));
            }
            _ => {
                let opened = t.open_unsuspendable(&["pipe r", "pipe w"], 2, || {
                    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
                    let fds = vec![r.as_raw_fd(), w.as_raw_fd()];
                    pipes.extend([r, w]);
                    Ok::<_, Errno>(fds)
                });
                match opened {
                    Ok(fds) => {
                        thread::yield_now();
                        t.close_unsuspendable(&fds, |_| {
                            pipes.clear();
                            Ok::<_, Errno>(())
                        })
                        .unwrap();
                    }
                    Err(e) if e.kind() == ErrorKind::NoRoom => tally.unsuspendable_no_room += 1,
                    Err(e) => panic!("open_unsuspendable: {e}"),
                }
            }
        }
        all_gets.fetch_add(tally.gets - before, Ordering::Relaxed);
    }
    for h in own.into_iter().flatten() {
        h.close().unwrap();
    }
    (tally, expected)
}

/// The descriptor numbers open now (single-threaded: an exact list).
fn open_fds() -> BTreeSet<RawFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(rustix::fs::CWD, "/proc/self/fd", flags, Mode::empty()).unwrap();
    let own = fd.as_raw_fd();
    let mut dir = rustix::fs::Dir::new(fd).unwrap();
    let mut open = BTreeSet::new();
    while let Some(entry) = dir.read() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if let Ok(n) = name.parse::<RawFd>() {
            open.insert(n);
        }
    }
    open.remove(&own);
    open
}

/// Lowers `RLIMIT_NOFILE` so that exactly `free` more descriptor numbers
/// can be had. Returns the limit to restore.
fn budget_rlimit(free: usize) -> Rlimit {
    let open = open_fds();
    let mut free_slots = (0..).filter(|fd| !open.contains(fd));
    let limit = match free {
        0 => free_slots.next(),
        n => free_slots.nth(n - 1).map(|fd| fd + 1),
    };
    // The numbers never run out: `open` is finite.
    let limit = limit.unwrap() as u64;
    let old = rustix::process::getrlimit(Resource::Nofile);
    let new = Rlimit {
        current: Some(limit),
        maximum: old.maximum,
    };
    rustix::process::setrlimit(Resource::Nofile, new).unwrap();
    old
}

fn stress(run_for: Duration) {
    let tmp = TempDir::new("stress");
    let pool = tmp.path().join("unlinked");
    let t = Arc::new(FdTracker::new(&pool, CAPACITY).unwrap());
    let dir = Directory::open(tmp.path()).unwrap();
    for i in 0..SHARED {
        let bytes: Vec<u8> = (0..SHARED_LEN).map(|o| shared_byte(i, o)).collect();
        std::fs::write(tmp.path().join(format!("shared-{i}")), bytes).unwrap();
    }
    let shared: Vec<Arc<FsHandle>> = (0..SHARED)
        .map(|i| {
            let flags = OFlags::RDONLY | OFlags::CLOEXEC;
            Arc::new(
                t.open(&dir, format!("shared-{i}"), flags, Mode::empty())
                    .unwrap(),
            )
        })
        .collect();
    let baseline = fd_count() - t.stats().active;
    let deadline = Instant::now() + run_for;
    let stop = AtomicBool::new(false);
    let start = Barrier::new(THREADS + 1);
    let all_gets = AtomicU64::new(0);

    // Exactly CAPACITY descriptor numbers for the tracker, counting the
    // ones it holds now.
    let limit = budget_rlimit(CAPACITY - t.stats().active);
    let (tallies, expected, samples) = thread::scope(|s| {
        let monitor = s.spawn(|| {
            let mut samples = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Err(v) = t.check_invariants() {
                    panic!("{v}");
                }
                samples += 1;
                // A pause, so that the checks (each takes the tracker's
                // mutex) do not starve the workers on two cores.
                thread::sleep(Duration::from_micros(200));
            }
            samples
        });
        let workers: Vec<_> = (0..THREADS)
            .map(|me| {
                let (t, dir, shared, start, all_gets) = (&t, &dir, &shared, &start, &all_gets);
                s.spawn(move || worker(me, t, dir, shared, deadline, start, all_gets))
            })
            .collect();
        start.wait();
        // Midway, unlink half the shared files under the readers' feet.
        thread::sleep(run_for / 2);
        for h in &shared[..SHARED / 2] {
            h.unlink().unwrap();
        }
        let results: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        stop.store(true, Ordering::Relaxed);
        let samples = monitor.join().unwrap();
        let (tallies, expected): (Vec<Tally>, Vec<_>) = results.into_iter().unzip();
        (tallies, expected, samples)
    });

    rustix::process::setrlimit(Resource::Nofile, limit).unwrap();
    let s = t.stats();
    let gets: u64 = tallies.iter().map(|t| t.gets).sum();
    let no_room: u64 = tallies.iter().map(|t| t.no_room).sum();
    let reads: u64 = tallies.iter().map(|t| t.reads).sum();
    eprintln!(
        "{gets} gets ({} misses, {no_room} without room), {reads} checked reads, \
         {samples} invariant checks",
        s.misses
    );
    assert!(
        samples > 0 && gets >= MIN_GETS,
        "the run did too little in {:?} past the deadline",
        GRACE
    );
    assert_eq!(s.uses, gets, "every get counted");
    assert_eq!(
        s.errors, no_room,
        "errors are exactly the gets without room"
    );
    assert!(s.misses > 0 && s.misses <= s.uses);
    t.check_invariants().unwrap();

    for (me, files) in expected.iter().enumerate() {
        for (i, bytes) in files.iter().enumerate() {
            let on_disk = std::fs::read(tmp.path().join(format!("t{me}-f{i}"))).unwrap();
            assert!(
                on_disk == *bytes,
                "t{me}-f{i}: {} bytes, {} expected",
                on_disk.len(),
                bytes.len()
            );
        }
    }
    let mut pooled = support::entries(&pool);
    pooled.sort();
    assert_eq!(
        pooled.len(),
        SHARED / 2,
        "the unlinked shared files wait in the pool"
    );
    for h in shared {
        Arc::into_inner(h)
            .expect("the workers are done")
            .close()
            .unwrap();
    }
    assert!(!pool.exists(), "the pool went with its last file");
    assert_eq!(fd_count(), baseline, "nothing left open");
    Arc::into_inner(t)
        .expect("the workers are done")
        .destroy()
        .unwrap();
}

#[test]
fn threads_share_one_tracker() {
    isolated("threads_share_one_tracker", || {
        let secs = std::env::var("FDLAB_STRESS_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3.0);
        stress(Duration::from_secs_f64(secs));
    });
}

/// The kernel's check has teeth: under the lowered limit, a tracker given
/// one more descriptor than the limit allows fails with `EMFILE`.
#[test]
fn the_rlimit_catches_one_descriptor_too_many() {
    isolated("the_rlimit_catches_one_descriptor_too_many", || {
        let tmp = TempDir::new("rlimit");
        let dir = Directory::open(tmp.path()).unwrap();
        let t = FdTracker::new(tmp.path().join("unlinked"), 4).unwrap();
        let limit = budget_rlimit(3);
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC;
        let mode = Mode::RUSR | Mode::WUSR;
        let held: Vec<_> = (0..3)
            .map(|i| t.open(&dir, format!("f{i}"), flags, mode).unwrap())
            .collect();
        let e = t.open(&dir, "f3", flags, mode).unwrap_err();
        rustix::process::setrlimit(Resource::Nofile, limit).unwrap();
        assert_eq!(e.errno(), Errno::MFILE, "{e}");
        drop(held);
        t.destroy().unwrap();
    });
}
