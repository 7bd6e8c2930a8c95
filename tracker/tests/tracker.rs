//! The fd tracker on real files: the scenarios of LTTng's own test suite
//! (`tests/unit/test_fd_tracker.c` in lttng-tools), ported, and the
//! behaviours the book's chapter claims. Tests that count this process's
//! descriptors run alone in a helper process (see `support/mod.rs`).

mod support;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use fdlab_tracker::ErrorKind;
use fdlab_tracker::{
    Directory, FdTracker, FsHandle, HandleState, TrackerError, UnsuspendableError,
};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use support::{entries, fd_count, in_helper, isolated, TempDir};

/// LTTng's `TRACKER_FD_LIMIT`.
const LIMIT: usize = 50;

/// LTTng's test string, written one byte at a time.
const CONTENTS: &[u8] = b"Bacon ipsum dolor amet jerky drumstick sirloin \
strip steak venison boudin filet mignon picanha doner shoulder. \
Strip steak brisket alcatra, venison beef chuck cupim pastrami. \
Landjaeger tri-tip salami leberkas ball tip, ham hock chuck sausage \
flank jerky cupim. Pig bacon chuck pancetta andouille.";

const RW_CREATE: OFlags = OFlags::RDWR.union(OFlags::CREATE).union(OFlags::CLOEXEC);

fn mode() -> Mode {
    Mode::RUSR | Mode::WUSR
}

/// A test directory, a tracker whose pool is `unlinked_files` inside it (as
/// LTTng's tests place it), and the directory opened for `openat`.
fn setup(name: &str, capacity: usize) -> (TempDir, FdTracker, Directory) {
    let tmp = TempDir::new(name);
    let tracker = FdTracker::new(tmp.path().join("unlinked_files"), capacity).unwrap();
    let dir = Directory::open(tmp.path()).unwrap();
    (tmp, tracker, dir)
}

fn open_files(t: &FdTracker, dir: &Directory, n: usize) -> Vec<FsHandle> {
    (0..n)
        .map(|i| t.open(dir, format!("file-{i}"), RW_CREATE, mode()).unwrap())
        .collect()
}

/// LTTng's `cleanup_files`: unlink, then close, every handle.
fn cleanup(handles: Vec<FsHandle>) {
    for h in handles {
        h.unlink().unwrap();
        h.close().unwrap();
    }
}

/// Tracks existing descriptors (LTTng's `noop_open`).
fn track(t: &FdTracker, name: &str, fd: RawFd) -> Result<Vec<RawFd>, UnsuspendableError<Errno>> {
    t.open_unsuspendable(&[name], 1, || Ok(vec![fd]))
}

fn untrack(t: &FdTracker, fds: &[RawFd]) -> Result<(), UnsuspendableError<Errno>> {
    t.close_unsuspendable(fds, |_| Ok(()))
}

fn track_std_fds(t: &FdTracker) {
    for (fd, name) in [(0, "stdin"), (1, "stdout"), (2, "stderr")] {
        assert_eq!(track(t, name, fd).unwrap(), [fd]);
    }
}

fn untrack_std_fds(t: &FdTracker) {
    for fd in 0..3 {
        untrack(t, &[fd]).unwrap();
    }
}

#[test]
fn unsuspendable_basic() {
    let (tmp, t, _dir) = setup("unsuspendable-basic", LIMIT);
    track_std_fds(&t);
    assert_eq!(t.stats().unsuspendable, 3);
    let dump = t.dump();
    for name in ["stdin [fd 0]", "stdout [fd 1]", "stderr [fd 2]"] {
        assert!(dump.contains(name), "{dump}");
    }
    untrack_std_fds(&t);
    t.destroy().unwrap();
    assert!(tmp.entries().is_empty(), "test directory is empty");
}

#[test]
fn unsuspendable_callback_errors_pass_through() {
    let (_tmp, t, _dir) = setup("unsuspendable-cb", LIMIT);
    let r = t.open_unsuspendable(&[], 1, || Err(Errno::NETDOWN));
    assert!(
        matches!(r, Err(UnsuspendableError::Callback(Errno::NETDOWN))),
        "{r:?}"
    );
    assert_eq!(t.stats().unsuspendable, 0, "nothing tracked");
    track(&t, "stdout", 1).unwrap();
    let r = t.close_unsuspendable(&[1], |_| Err(Errno::NETDOWN));
    assert!(
        matches!(r, Err(UnsuspendableError::Callback(Errno::NETDOWN))),
        "{r:?}"
    );
    assert_eq!(t.stats().unsuspendable, 1, "nothing untracked");
    untrack(&t, &[1]).unwrap();
    t.destroy().unwrap();
}

/// A close callback that panics may not have closed its descriptors, like
/// one that returns an error: both leave them tracked, and the budget as
/// it was.
#[test]
fn a_panicking_close_callback_untracks_nothing() {
    let (_tmp, t, _dir) = setup("unsuspendable-panic", LIMIT);
    track(&t, "stdout", 1).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = t.close_unsuspendable(&[1], |_| -> Result<(), Errno> {
            panic!("planted panic in a close callback")
        });
    }));
    assert!(r.is_err(), "the callback's panic reaches the caller");
    let s = t.stats();
    assert_eq!(s.unsuspendable, 1, "nothing untracked");
    t.check_invariants().unwrap();
    untrack(&t, &[1]).unwrap();
    assert_eq!(t.stats().unsuspendable, 0);
    t.destroy().unwrap();
}

#[test]
fn unsuspendable_duplicate_is_eexist() {
    let (_tmp, t, _dir) = setup("unsuspendable-dup", LIMIT);
    track(&t, "stdout", 1).unwrap();
    let e = track(&t, "stdout again", 1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyTracked);
    assert!(matches!(&e, UnsuspendableError::Tracker(t) if t.errno() == Errno::EXIST));
    // One number twice in one answer, too; nothing of it is tracked.
    let e = t
        .open_unsuspendable(&[], 2, || Ok::<_, Errno>(vec![2, 2]))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyTracked);
    assert_eq!(t.stats().unsuspendable, 1);
    untrack(&t, &[1]).unwrap();
    t.destroy().unwrap();
}

#[test]
fn unsuspendable_limit() {
    isolated("unsuspendable_limit", || {
        let (_tmp, t, _dir) = setup("unsuspendable-limit", LIMIT);
        let before = fd_count();
        let mut pipes: Vec<OwnedFd> = Vec::new();
        let fds = t
            .open_unsuspendable(&[], LIMIT, || {
                for _ in 0..LIMIT / 2 {
                    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
                    pipes.extend([r, w]);
                }
                Ok::<_, Errno>(pipes.iter().map(|p| p.as_raw_fd()).collect())
            })
            .unwrap();
        assert_eq!(
            fd_count(),
            before + LIMIT,
            "the limit met with unsuspendable descriptors"
        );
        let e = track(&t, "stdout", 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoRoom);
        assert!(matches!(&e, UnsuspendableError::Tracker(t) if t.errno() == Errno::MFILE));
        t.close_unsuspendable(&fds, |_| {
            pipes.clear();
            Ok::<_, Errno>(())
        })
        .unwrap();
        assert_eq!(fd_count(), before);
        t.destroy().unwrap();
    });
}

#[test]
fn unsuspendable_close_untracked_is_einval() {
    let (_tmp, t, _dir) = setup("unsuspendable-untracked", LIMIT);
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let unknown = r.as_raw_fd();
    drop((r, w));
    track(&t, "stdout", 1).unwrap();
    let mut called = false;
    let e = t
        .close_unsuspendable(&[unknown], |_| {
            called = true;
            Ok::<_, Errno>(())
        })
        .unwrap_err();
    assert!(matches!(&e, UnsuspendableError::Tracker(t) if t.errno() == Errno::INVAL));
    assert!(
        !called,
        "the callback does not run for an unknown descriptor"
    );
    // A tracked descriptor given twice is unknown the second time.
    let e = untrack(&t, &[1, 1]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotTracked);
    untrack(&t, &[1]).unwrap();
    t.destroy().unwrap();
}

#[test]
fn suspendable_limit() {
    isolated("suspendable_limit", || {
        let (tmp, t, dir) = setup("suspendable-limit", LIMIT);
        let before = fd_count();
        let handles = open_files(&t, &dir, LIMIT * 10);
        assert_eq!(fd_count(), before + LIMIT);
        let s = t.stats();
        assert_eq!((s.active, s.suspended), (LIMIT, LIMIT * 9));
        cleanup(handles);
        assert_eq!(fd_count(), before);
        t.destroy().unwrap();
        assert!(tmp.entries().is_empty(), "{:?}", tmp.entries());
    });
}

/// LTTng's `test_suspendable_restore`: 500 files, 50 descriptors, the
/// string written round robin one byte at a time, the descriptor count
/// checked after every write, and every file read back whole.
#[test]
fn suspendable_restore() {
    isolated("suspendable_restore", || {
        let (tmp, t, dir) = setup("suspendable-restore", LIMIT);
        let before = fd_count();
        let handles = open_files(&t, &dir, LIMIT * 10);
        let mut over = 0;
        for byte in CONTENTS.chunks(1) {
            for h in &handles {
                let fd = h.get_fd().unwrap();
                assert_eq!(rustix::io::write(&fd, byte).unwrap(), 1);
                if fd_count() > before + LIMIT {
                    over += 1;
                }
            }
        }
        assert_eq!(over, 0, "the tracker kept to its budget");
        // Round robin over more files than descriptors: every use misses.
        let s = t.stats();
        let writes = (CONTENTS.len() * handles.len()) as u64;
        assert_eq!((s.uses, s.misses, s.errors), (writes, writes, 0));
        for (i, h) in handles.iter().enumerate() {
            let on_disk = std::fs::read(tmp.path().join(format!("file-{i}"))).unwrap();
            assert_eq!(on_disk, CONTENTS, "file-{i}");
            let fd = h.get_fd().unwrap();
            let mut back = vec![0; CONTENTS.len() + 1];
            let n = rustix::io::pread(&fd, &mut back, 0).unwrap();
            assert_eq!(&back[..n], CONTENTS, "file-{i} through its handle");
        }
        cleanup(handles);
        t.destroy().unwrap();
        assert!(tmp.entries().is_empty());
    });
}

/// LTTng's `test_mixed_limit`: unsuspendable descriptors take their room
/// from the suspendable ones.
#[test]
fn mixed_limit() {
    isolated("mixed_limit", || {
        let (tmp, t, dir) = setup("mixed-limit", LIMIT);
        let before = fd_count();
        let handles = open_files(&t, &dir, LIMIT);
        assert_eq!(fd_count(), before + LIMIT);
        // stdin, stdout and stderr were open already: tracking them
        // suspends three handles.
        track_std_fds(&t);
        assert_eq!(fd_count(), before + LIMIT - 3);
        assert_eq!(t.stats().active, LIMIT - 3);
        untrack_std_fds(&t);
        assert_eq!(fd_count(), before + LIMIT - 3);
        cleanup(handles);
        t.destroy().unwrap();
        assert!(tmp.entries().is_empty());
    });
}

/// LTTng's `test_unlink`, with a capacity of one.
#[test]
fn unlink_with_capacity_one() {
    let (tmp, t, dir) = setup("unlink", 1);
    let pool = tmp.path().join("unlinked_files");
    let h0 = t.open(&dir, "my_file", RW_CREATE, mode()).unwrap();
    let h1 = t.open(&dir, "my_file", RW_CREATE, mode()).unwrap();
    h0.unlink().unwrap();
    assert!(
        !tmp.path().join("my_file").exists(),
        "the name is gone at once"
    );
    assert_eq!(entries(&pool), ["0"]);
    assert_eq!(h0.name(), pool.join("0").display().to_string());

    let g0 = h0.get_fd().unwrap();
    let e = h1.get_fd().unwrap_err();
    assert_eq!(
        e.errno(),
        Errno::MFILE,
        "two descriptors cannot be used at once"
    );
    drop(g0);
    drop(h1.get_fd().unwrap());

    let e = h1.unlink().unwrap_err();
    assert_eq!(e.errno(), Errno::NOENT, "{e}");
    assert_eq!(e.kind(), ErrorKind::AlreadyUnlinked);

    let h2 = t.open(&dir, "my_file", RW_CREATE, mode()).unwrap();
    h2.unlink().unwrap();
    assert_eq!(entries(&pool), ["0", "1"]);

    h0.close().unwrap();
    assert_eq!(entries(&pool), ["0", "1"], "h1 still holds 0");
    h1.close().unwrap();
    h2.close().unwrap();
    assert!(tmp.entries().is_empty(), "{:?}", tmp.entries());
    t.destroy().unwrap();
}

/// A suspended handle to an unlinked file comes back from the pool, at its
/// offset.
#[test]
fn unlinked_suspended_handle_restores_from_the_pool() {
    let (tmp, t, dir) = setup("unlink-restore", 1);
    let a = t.open(&dir, "a", RW_CREATE, mode()).unwrap();
    rustix::io::write(a.get_fd().unwrap(), b"abc").unwrap();
    a.unlink().unwrap();
    let b = t.open(&dir, "b", RW_CREATE, mode()).unwrap();
    assert_eq!(a.state(), HandleState::Suspended);
    rustix::io::write(a.get_fd().unwrap(), b"def").unwrap();
    assert_eq!(
        std::fs::read(tmp.path().join("unlinked_files/0")).unwrap(),
        b"abcdef"
    );
    a.close().unwrap();
    b.close().unwrap();
    assert_eq!(tmp.entries(), ["b"]);
    t.destroy().unwrap();
}

/// A file replaced by another at its path is not silently reopened.
#[test]
fn restore_refuses_a_replaced_file() {
    let (tmp, t, dir) = setup("replaced", 1);
    let a = t.open(&dir, "f", RW_CREATE, mode()).unwrap();
    rustix::io::write(a.get_fd().unwrap(), b"old").unwrap();
    let old = a.file_key().unwrap();
    // Suspended, then replaced.
    let b = t.open(&dir, "g", RW_CREATE, mode()).unwrap();
    assert_eq!(a.state(), HandleState::Suspended);
    std::fs::write(tmp.path().join("f.new"), b"new").unwrap();
    std::fs::rename(tmp.path().join("f.new"), tmp.path().join("f")).unwrap();
    let e = a.get_fd().unwrap_err();
    assert_eq!((e.kind(), e.errno()), (ErrorKind::Replaced, Errno::STALE));
    let message = e.to_string();
    assert!(
        message.contains("was replaced") && message.contains(&old.to_string()),
        "{message}"
    );
    assert_eq!(t.stats().errors, 1);
    // Neither reopened nor unlinked on the new file.
    let e = a.unlink().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Replaced);
    assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"new");
    a.close().unwrap();
    b.close().unwrap();
    t.destroy().unwrap();
}

/// Log rotation: a file renamed behind the tracker's back while a handle
/// holds it is followed to its new name when the handle is suspended, so
/// the handle comes back to the same file; a file deleted or replaced while
/// open has no name to come back by, so its handle keeps its descriptor
/// (it is never chosen to make room) rather than be lost.
#[test]
fn rotated_logs_are_followed_and_deleted_files_kept_open() {
    let (tmp, t, dir) = setup("rotate", 2);
    let a = t.open(&dir, "log", RW_CREATE, mode()).unwrap();
    rustix::io::write(a.get_fd().unwrap(), b"one").unwrap();
    std::fs::rename(tmp.path().join("log"), tmp.path().join("log.1")).unwrap();
    let b = t.open(&dir, "other", RW_CREATE, mode()).unwrap();
    std::fs::remove_file(tmp.path().join("other")).unwrap();
    let c = t.open(&dir, "c", RW_CREATE, mode()).unwrap();
    assert_eq!(a.state(), HandleState::Suspended);
    assert!(matches!(b.state(), HandleState::Active { .. }));
    rustix::io::write(a.get_fd().unwrap(), b" two").unwrap();
    assert_eq!(std::fs::read(tmp.path().join("log.1")).unwrap(), b"one two");
    assert!(!tmp.path().join("log").exists(), "not recreated");
    assert_eq!(c.state(), HandleState::Suspended);
    // The deleted file's handle still works, through its own descriptor.
    rustix::io::write(b.get_fd().unwrap(), b"kept").unwrap();
    // With every active handle unrestorable there is no room.
    std::fs::remove_file(tmp.path().join("log.1")).unwrap();
    let e = t.open(&dir, "d", RW_CREATE, mode()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoRoom, "{e}");
    assert_eq!(t.stats().errors, 0, "refusing to suspend is not an error");
    for h in [a, b, c] {
        h.close().unwrap();
    }
    t.destroy().unwrap();
}

/// A name that now leads to a FIFO is a replaced file, said at once: the
/// restore does not wait in `open(2)` for a writer that never comes
/// (holding its room in the budget and every other user of the handle).
#[test]
fn restore_does_not_block_on_a_fifo() {
    let (tmp, t, dir) = setup("fifo", 1);
    let t = Arc::new(t);
    let a = Arc::new(
        t.open(&dir, "f", OFlags::RDONLY | OFlags::CREATE, mode())
            .unwrap(),
    );
    let b = t.open(&dir, "g", RW_CREATE, mode()).unwrap();
    assert_eq!(a.state(), HandleState::Suspended);
    let fifo = tmp.path().join("f");
    std::fs::remove_file(&fifo).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        Mode::RUSR | Mode::WUSR,
        0,
    )
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let a2 = Arc::clone(&a);
    let thread = std::thread::spawn(move || {
        let r = a2.get_fd().map(|_| ()).map_err(|e| (e.kind(), e.errno()));
        let _ = tx.send(r);
    });
    let got = rx.recv_timeout(std::time::Duration::from_secs(10));
    if got.is_err() {
        // Blocked in open(2): a writer lets it go, so the test can fail
        // instead of hanging.
        let _w = std::fs::OpenOptions::new().write(true).open(&fifo);
        thread.join().unwrap();
        panic!("get_fd blocked in open(2) on a FIFO");
    }
    thread.join().unwrap();
    assert_eq!(got.unwrap(), Err((ErrorKind::Replaced, Errno::STALE)));
    b.close().unwrap();
    Arc::into_inner(a).unwrap().close().unwrap();
    Arc::into_inner(t).unwrap().destroy().unwrap();
}

/// When the unlinked-file pool cannot take a file, the error names the
/// pool and says what is wrong with it, with a kind of its own: the file is
/// fine and stays where it was.
#[test]
fn pool_problems_blame_the_pool() {
    // Taken by a regular file before the first unlink.
    let (tmp, t, dir) = setup("pool-file", 4);
    let pool = tmp.path().join("unlinked_files");
    std::fs::write(&pool, b"not a pool").unwrap();
    let a = t.open(&dir, "f", RW_CREATE, mode()).unwrap();
    let e = a.unlink().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Pool, "{e}");
    let m = e.to_string();
    assert!(
        m.contains(&pool.display().to_string()) && m.contains("is not a directory"),
        "{m}"
    );
    assert!(tmp.path().join("f").exists());
    std::fs::remove_file(&pool).unwrap();
    // Removed behind the tracker's back while it held a file.
    let b = t.open(&dir, "g", RW_CREATE, mode()).unwrap();
    b.unlink().unwrap();
    std::fs::remove_dir_all(&pool).unwrap();
    let e = a.unlink().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Pool, "{e}");
    assert!(e.to_string().contains("is gone"), "{e}");
    assert!(tmp.path().join("f").exists());
    a.close().unwrap();
    let _ = b.close();
    t.destroy().unwrap();
    // On another file system than the file (where /dev/shm is one).
    let shm = std::path::Path::new("/dev/shm");
    let other = |p: &std::path::Path| rustix::fs::stat(p).map(|s| s.st_dev);
    let tmp2 = TempDir::new("pool-xdev");
    if shm.is_dir() && other(shm).ok() != other(tmp2.path()).ok() {
        let pool = shm.join(format!("fdlab-pool-{}", std::process::id()));
        let t = FdTracker::new(&pool, 4).unwrap();
        let dir = Directory::open(tmp2.path()).unwrap();
        let a = t.open(&dir, "f", RW_CREATE, mode()).unwrap();
        let e = a.unlink().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Pool, "{e}");
        assert_eq!(e.errno(), Errno::XDEV);
        assert!(e.to_string().contains("another file system"), "{e}");
        a.close().unwrap();
        t.destroy().unwrap();
        let _ = std::fs::remove_dir(&pool);
    } else {
        eprintln!(
            "/dev/shm is missing or on the same file system as the temp dir: EXDEV not tried"
        );
    }
}

/// O_CREAT and O_TRUNC are not replayed: the file keeps its bytes, and a
/// file deleted behind the tracker's back is not recreated.
#[test]
fn restore_does_not_replay_creat_or_trunc() {
    let (tmp, t, dir) = setup("no-replay", 1);
    let flags = RW_CREATE | OFlags::TRUNC;
    let a = t.open(&dir, "a", flags, mode()).unwrap();
    rustix::io::write(a.get_fd().unwrap(), b"kept").unwrap();
    let b = t.open(&dir, "b", flags, mode()).unwrap();
    rustix::io::write(a.get_fd().unwrap(), b" and more").unwrap();
    assert_eq!(
        std::fs::read(tmp.path().join("a")).unwrap(),
        b"kept and more"
    );
    assert_eq!(b.state(), HandleState::Suspended);
    std::fs::remove_file(tmp.path().join("b")).unwrap();
    let e = b.get_fd().unwrap_err();
    assert_eq!(
        (e.kind(), e.errno()),
        (ErrorKind::NotFound, Errno::NOENT),
        "{e}"
    );
    assert!(!tmp.path().join("b").exists(), "not recreated");
    drop((a, b));
    t.destroy().unwrap();
}

/// The figures' claims: a round robin over capacity + 1 files misses on
/// every access; a working set within capacity reopens nothing after
/// warm-up.
#[test]
fn round_robin_over_capacity_plus_one_always_misses() {
    let cap = 8;
    let (_tmp, t, dir) = setup("round-robin", cap);
    let handles = open_files(&t, &dir, cap + 1);
    let before = t.stats();
    for _ in 0..100 {
        for h in &handles {
            drop(h.get_fd().unwrap());
        }
    }
    let s = t.stats();
    let uses = 100 * (cap as u64 + 1);
    assert_eq!(s.uses - before.uses, uses);
    assert_eq!(s.misses - before.misses, uses, "every access misses");
}

#[test]
fn working_set_within_capacity_never_reopens() {
    let cap = 8;
    let (_tmp, t, dir) = setup("working-set", cap);
    let handles = open_files(&t, &dir, 3 * cap);
    let hot = &handles[..cap];
    for h in hot {
        drop(h.get_fd().unwrap()); // warm-up: the first uses restore
    }
    let warm = t.stats();
    let fds: Vec<RawFd> = hot
        .iter()
        .map(|h| h.get_fd().unwrap().as_raw_fd())
        .collect();
    for _ in 0..1000 {
        for (h, &fd) in hot.iter().zip(&fds) {
            assert_eq!(h.get_fd().unwrap().as_raw_fd(), fd, "the same descriptor");
        }
    }
    let s = t.stats();
    assert_eq!(s.uses - warm.uses, 1001 * cap as u64);
    assert_eq!(s.misses, warm.misses, "no reopen after warm-up");
}

#[test]
fn lru_handle_not_in_use_is_the_one_suspended() {
    let (_tmp, t, dir) = setup("lru", 3);
    let h = open_files(&t, &dir, 3);
    let g0 = h[0].get_fd().unwrap(); // 0 in use and most recent; 1 is the LRU
    drop(h[2].get_fd().unwrap()); // order now 1, 0, 2
    let extra = t.open(&dir, "extra", RW_CREATE, mode()).unwrap();
    assert_eq!(h[1].state(), HandleState::Suspended);
    let extra2 = t.open(&dir, "extra2", RW_CREATE, mode()).unwrap();
    // 0 is older than 2 but in use.
    assert_eq!(h[0].state(), HandleState::Active { users: 1 });
    assert_eq!(h[2].state(), HandleState::Suspended);
    drop(g0);
    drop((extra, extra2, h));
    t.check_invariants().unwrap();
    t.destroy().unwrap();
}

#[test]
fn arc_guard_keeps_the_handle_in_use_and_open() {
    let (_tmp, t, dir) = setup("arc-guard", 1);
    let h = Arc::new(t.open(&dir, "a", RW_CREATE, mode()).unwrap());
    let g = h.get_fd_arc().unwrap();
    let g2 = h.get_fd_arc().unwrap();
    assert_eq!(h.state(), HandleState::Active { users: 2 });
    assert!(Arc::ptr_eq(g.handle(), &h));
    let e = t.open(&dir, "b", RW_CREATE, mode()).unwrap_err();
    assert_eq!(e.errno(), Errno::MFILE, "the only descriptor is in use");
    drop(g);
    let h = Arc::try_unwrap(h).expect_err("a guard still holds the handle");
    drop(g2);
    let h = Arc::try_unwrap(h).expect("no guard left");
    h.close().unwrap();
    t.destroy().unwrap();
}

/// A suspension can fail (lseek on a FIFO): the handle stays active, it
/// counts as an error, and without another victim there is no room.
#[test]
fn failed_suspension_is_an_error_not_a_loss() {
    let (tmp, t, dir) = setup("fifo", 1);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        tmp.path().join("fifo"),
        rustix::fs::FileType::Fifo,
        mode(),
        0,
    )
    .unwrap();
    // O_RDWR: Linux opens a FIFO without waiting for a peer (fifo(7)).
    let f = t
        .open(&dir, "fifo", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .unwrap();
    let e = t.open(&dir, "other", RW_CREATE, mode()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoRoom);
    assert_eq!(t.stats().errors, 1);
    assert_eq!(f.state(), HandleState::Active { users: 0 });
    t.check_invariants().unwrap();
    f.close().unwrap();
    t.destroy().unwrap();
}

#[test]
fn stats_and_dump_name_everything() {
    let (_tmp, t, dir) = setup("dump", 2);
    let h = open_files(&t, &dir, 3); // file-0 suspended
    rustix::io::write(h[1].get_fd().unwrap(), b"12345").unwrap();
    let g = h[0].get_fd().unwrap(); // a miss: file-2 is the LRU, suspended
    let dump = t.dump();
    assert!(
        dump.contains(&format!(
            "file-0 [active, fd {}, in use (1)]",
            g.as_raw_fd()
        )),
        "{dump}"
    );
    drop(g);
    let mut pipe = Vec::new();
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let fds = vec![r.as_raw_fd(), w.as_raw_fd()];
    pipe.extend([r, w]);
    t.open_unsuspendable(&["pipe r"], 1, || Ok::<_, Errno>(vec![fds[0]]))
        .unwrap();
    t.open_unsuspendable(&[], 1, || Ok::<_, Errno>(vec![fds[1]]))
        .unwrap();
    let s = t.stats();
    assert_eq!(
        (
            s.uses,
            s.misses,
            s.errors,
            s.active,
            s.suspended,
            s.unsuspendable,
            s.capacity
        ),
        (2, 1, 0, 0, 3, 2, 2)
    );
    let dump = t.dump();
    assert!(dump.contains("file-1 [suspended at offset 5]"), "{dump}");
    assert!(dump.contains(&format!("pipe r [fd {}]", fds[0])), "{dump}");
    assert!(dump.contains(&format!("unnamed [fd {}]", fds[1])), "{dump}");
    assert!(dump.contains("2 uses, 1 misses, 0 errors"), "{dump}");
    drop(h);
    t.close_unsuspendable(&fds, |_| {
        pipe.clear();
        Ok::<_, Errno>(())
    })
    .unwrap();
    t.destroy().unwrap();
}

#[test]
fn destroy_reports_a_leak_and_the_handles_go_on() {
    let (_tmp, t, dir) = setup("leak", 2);
    let h = t.open(&dir, "leaked", RW_CREATE, mode()).unwrap();
    let leak = t.destroy().unwrap_err();
    assert_eq!(leak.stats.active, 1);
    let message = leak.to_string();
    assert!(
        message.contains("1 handles") && message.contains("leaked [active"),
        "{message}"
    );
    rustix::io::write(h.get_fd().unwrap(), b"still works").unwrap();
    h.close().unwrap();
}

#[test]
fn drop_warns_about_a_leak() {
    let stderr = isolated("drop_warns_about_a_leak", || {
        let (_tmp, t, dir) = setup("drop-leak", 2);
        let h = t.open(&dir, "leaked-on-drop", RW_CREATE, mode()).unwrap();
        drop(t);
        h.close().unwrap();
    });
    if !support::in_helper("drop_warns_about_a_leak") {
        assert!(
            stderr.contains("warning: fd tracker destroyed while tracking 1 handles"),
            "{stderr}"
        );
        assert!(stderr.contains("leaked-on-drop"), "{stderr}");
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let e = FdTracker::new("relative/pool", 1).unwrap_err();
    assert!(matches!(e, TrackerError::RelativeUnlinkDir(_)), "{e}");
    let (_tmp, t, dir) = setup("bad-input", 1);
    let e = t
        .open(&dir, "missing", OFlags::RDWR, Mode::empty())
        .unwrap_err();
    assert_eq!((e.kind(), e.errno()), (ErrorKind::NotFound, Errno::NOENT));
    let e = t
        .open(&dir, ".", OFlags::TMPFILE | OFlags::RDWR, mode())
        .unwrap_err();
    assert!(matches!(e, TrackerError::Unrestorable { .. }), "{e}");
    let e = t
        .open_unsuspendable(&["a", "b"], 1, || Ok::<_, Errno>(vec![1]))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    let e = t
        .open_unsuspendable(&[], 1, || Ok::<_, Errno>(vec![1, 2]))
        .unwrap_err();
    assert!(
        matches!(
            e,
            UnsuspendableError::Tracker(TrackerError::WrongCount { .. })
        ),
        "{e}"
    );
    let e = t
        .open_unsuspendable(&[], 1, || Ok::<_, Errno>(vec![-1]))
        .unwrap_err();
    assert!(
        matches!(&e, UnsuspendableError::Tracker(t) if t.errno() == Errno::BADF),
        "{e}"
    );
    let e = t
        .open_unsuspendable(&[], 2, || Ok::<_, Errno>(vec![1, 2]))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoRoom, "more than the capacity");
    let zero = FdTracker::new(std::env::temp_dir().join("fdlab-unused-pool"), 0).unwrap();
    assert_eq!(
        zero.open(&dir, "x", RW_CREATE, mode()).unwrap_err().kind(),
        ErrorKind::NoRoom
    );
    assert_eq!(
        t.stats(),
        fdlab_tracker::Stats {
            capacity: 1,
            ..Default::default()
        }
    );
    t.check_invariants().unwrap();
}

/// An inode number freed while a handle was suspended, and given to another
/// file at the same name, is not mistaken for the handle's file: the
/// generation tells them apart (ext4 reuses the number at once).
#[test]
fn a_reused_inode_number_is_not_mistaken_for_the_file() {
    use std::os::unix::fs::MetadataExt;
    let (tmp, t, dir) = setup("reused-inode", 1);
    let h = t.open(&dir, "f", RW_CREATE, mode()).unwrap();
    rustix::io::write(h.get_fd().unwrap(), b"mine").unwrap();
    let ino = h.file_key().unwrap().ino;
    let other = t.open(&dir, "other", RW_CREATE, mode()).unwrap();
    assert_eq!(h.state(), HandleState::Suspended, "f has no descriptor now");
    std::fs::remove_file(tmp.path().join("f")).unwrap(); // its inode dies
    for i in 0..64 {
        let p = tmp.path().join(format!("g{i}"));
        std::fs::write(&p, b"stranger").unwrap();
        if std::fs::metadata(&p).unwrap().ino() == ino {
            std::fs::rename(&p, tmp.path().join("f")).unwrap();
            let e = h.get_fd().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Replaced, "{e}");
            assert_eq!(h.unlink().unwrap_err().kind(), ErrorKind::Replaced);
            assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"stranger");
            drop((h, other));
            t.destroy().unwrap();
            return;
        }
    }
    const EXT4_SUPER_MAGIC: i64 = 0xEF53;
    let fs = rustix::fs::statfs(tmp.path()).unwrap();
    assert_ne!(
        fs.f_type as i64, EXT4_SUPER_MAGIC,
        "ext4 reuses inode numbers at once"
    );
}

/// 2^20 - 1 guards on one handle at once; one more is refused.
#[test]
fn too_many_guards_are_refused() {
    let (_tmp, t, dir) = setup("many-guards", 1);
    let h = t.open(&dir, "f", RW_CREATE, mode()).unwrap();
    let guards: Vec<_> = (0..(1 << 20) - 1).map(|_| h.get_fd().unwrap()).collect();
    let e = h.get_fd().unwrap_err();
    assert_eq!(e.errno(), Errno::BUSY, "{e}");
    drop(guards);
    assert_eq!(t.stats().uses, 1 << 20);
    drop(h.get_fd().unwrap());
    drop(h);
    t.destroy().unwrap();
}

// The support module's own helpers, checked once.

#[test]
fn temp_dir_is_removed_with_its_contents() {
    let path = {
        let d = TempDir::new("self-test");
        std::fs::write(d.path().join("f"), b"x").unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        assert_eq!(d.entries(), ["f", "sub"]);
        d.path().to_path_buf()
    };
    assert!(!path.exists());
}

#[test]
fn fd_count_sees_every_open_in_a_helper() {
    isolated("fd_count_sees_every_open_in_a_helper", || {
        let before = fd_count();
        let files: Vec<_> = (0..7)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        assert_eq!(fd_count(), before + 7);
        drop(files);
        assert_eq!(fd_count(), before);
    });
}

#[test]
fn a_failing_helper_fails_its_parent() {
    let name = "a_failing_helper_fails_its_parent";
    if in_helper(name) {
        // The helper's body: fail.
        panic!("planted failure");
    }
    let parent = std::panic::catch_unwind(|| {
        isolated(name, || unreachable!());
    });
    let message = parent.expect_err("the parent must fail when its helper does");
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("planted failure"), "{message}");
}
