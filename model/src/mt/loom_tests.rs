//! Loom models of the races the concurrent table must survive. Each runs
//! every interleaving of two threads (up to the preemption bound) over the
//! same code the table runs normally: `sync` and `publish` swap in loom's
//! primitives under `--cfg loom`, chunk 0 has 2 slots, so that a third
//! descriptor grows the table, and a slot's blocks have 1 then 2 cells, so
//! that the second install in a slot replaces its block and the third
//! fills the new block's second cell.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p
//! fdlab-model --release --lib mt::`. The two-thread models explore every
//! interleaving, the three-thread one those with at most 5 preemptions;
//! `LOOM_MAX_PREEMPTIONS` sets one bound for all.
//!
//! Each scenario runs twice: on the table as written, where it must pass,
//! and on a table carrying a planted bug (`mutant`), where loom must find
//! an interleaving that breaks it. A test that cannot fail proves nothing.

use std::sync::atomic::AtomicBool as StdBool;

use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;

use super::invariants::check_all;
use super::test_util::{fd, open};
use super::{File, Filedesc, Slot};
use crate::mutant::Mutant;
use crate::Errno;
use crate::Fd;

/// Runs `f` under loom: every interleaving when `bound` is `None`, those
/// with at most `bound` preemptions otherwise. `LOOM_MAX_PREEMPTIONS`
/// overrides either.
fn model(bound: Option<usize>, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        b.preemption_bound = bound;
    }
    b.check(f);
}

/// Two threads: small enough to explore every interleaving.
fn model2(f: impl Fn() + Sync + Send + 'static) {
    model(None, f)
}

/// Files opened in a table, with their numbers.
type Opened = Vec<(Fd, Arc<File<u32>>)>;

/// How the table under test came to hold its files.
#[derive(Clone, Copy)]
enum Made {
    /// Opened in it.
    Opened,
    /// Opened in a table of which it is fork's copy (the original gone):
    /// its slots name their files from the copy's base until written.
    Forked,
    /// Opened in a table of which it is a snapshot's copy (the original
    /// gone), naming copies of the files from the array a snapshot's
    /// tables share, by index, until written.
    Snapshotted,
}

/// A table carrying `m` with a file of each of `data` at the lowest
/// numbers, made as `made` says; the files it holds.
fn table_with(m: Mutant, made: Made, data: &[u32]) -> (Arc<Filedesc<u32>>, Opened) {
    let t = Filedesc::with_mutant(4, m);
    let opened: Opened = data.iter().map(|&d| open(&t, d)).collect();
    match made {
        Made::Opened => (Arc::new(t), opened),
        Made::Forked => (Arc::new(t.fdcopy()), opened),
        Made::Snapshotted => {
            let mut files = vec![None; 1 + *data.iter().max().unwrap_or(&0) as usize];
            for (_, f) in &opened {
                files[*f.data() as usize] = Some(Arc::new(f.snapshot(*f.data())));
            }
            let files = Arc::new(files.into_boxed_slice());
            let copy = t.snapshot(&files, |f| *f.data());
            let copies = opened
                .iter()
                .map(|(n, f)| (*n, Arc::clone(files[*f.data() as usize].as_ref().unwrap())))
                .collect();
            (Arc::new(copy), copies)
        }
    }
}

/// FREF/FRELE against close: a thread looks up fd 0 and uses the file while
/// another closes it. Exactly one closef, never a use after it, whichever
/// FRELE is last, and the number is free afterwards.
fn fref_against_close(m: Mutant, made: Made) {
    model2(move || {
        let (t, opened) = table_with(m, made, &[7]);
        let [(n, a)]: [_; 1] = opened.try_into().unwrap();
        let t2 = Arc::clone(&t);
        let reader = thread::spawn(move || match t2.fd_getfile(n) {
            // The use: `*f` checks the file is alive.
            Ok(f) => assert_eq!(*f.data(), 7),
            Err(e) => assert_eq!(e, Errno::EBADF),
        });
        t.fdrelease(n).unwrap();
        reader.join().unwrap();
        assert_eq!(t.fd_getfile(n).err(), Some(Errno::EBADF), "closed");
        assert_eq!((a.count(), a.closes()), (0, 1));
        check_all(&[&*t], &[a], &[]).unwrap();
    });
}

#[test]
fn fref_against_close_closes_once() {
    fref_against_close(Mutant::None, Made::Opened);
}

/// The same on a slot that a fork's copy names from its base.
#[test]
fn getfile_copied_against_close_closes_once() {
    fref_against_close(Mutant::None, Made::Forked);
}

/// The same on a slot that a snapshot's copy names from the shared array.
#[test]
fn getfile_snapshotted_against_close_closes_once() {
    fref_against_close(Mutant::None, Made::Snapshotted);
}

#[test]
#[should_panic(expected = "closed")]
fn mutant_close_copied_in_place_is_caught() {
    fref_against_close(Mutant::CloseCopiedInPlace, Made::Forked);
}

#[test]
#[should_panic(expected = "closed")]
fn mutant_close_snapshotted_in_place_is_caught() {
    fref_against_close(Mutant::CloseCopiedInPlace, Made::Snapshotted);
}

/// Two lookups against a close, three threads: any of the three may run
/// the last FRELE, and closef's work still runs once.
#[test]
fn two_frefs_against_close_close_once() {
    // Three threads: every interleaving is out of reach (bound 5 explores
    // about 225 thousand, in about 10 s).
    model(Some(5), || {
        let t = Arc::new(Filedesc::new(4));
        let (n, a) = open(&t, 7);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let t2 = Arc::clone(&t);
                thread::spawn(move || {
                    if let Ok(f) = t2.fd_getfile(n) {
                        assert_eq!(*f.data(), 7);
                    }
                })
            })
            .collect();
        t.fdrelease(n).unwrap();
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!((a.count(), a.closes()), (0, 1));
        check_all(&[&*t], &[a], &[]).unwrap();
    });
}

#[test]
#[should_panic(expected = "after closef")]
fn mutant_fref_after_zero_is_caught() {
    fref_against_close(Mutant::FrefAfterZero, Made::Opened);
}

#[test]
#[should_panic(expected = "after closef")]
fn mutant_frele_early_is_caught() {
    fref_against_close(Mutant::FreleEarly, Made::Opened);
}

/// A reference held across the close races the close's own FRELE: one of
/// the two runs closef's work, once.
#[test]
fn frele_against_close_closes_once() {
    model2(|| {
        let t = Arc::new(Filedesc::new(4));
        let (n, a) = open(&t, 0);
        let held = t.fd_getfile(n).unwrap().into_hold();
        let holder = thread::spawn(move || {
            assert_eq!(*held.data(), 0);
            drop(held);
        });
        t.fdrelease(n).unwrap();
        assert_eq!(t.fd_getfile(n).err(), Some(Errno::EBADF), "gone at once");
        holder.join().unwrap();
        assert_eq!((a.count(), a.closes()), (0, 1));
        check_all(&[&*t], &[a], &[]).unwrap();
    });
}

/// fd_getfile against dup2 replacing the slot (fd 1's block is full, so
/// dup2 publishes a new one; in a fork's copy, fd 1 has no block yet and
/// names its file from the base): the lookup gets the old file or the new
/// one, alive and counted, never `EBADF`, since fd 1 is installed
/// throughout; the old one is closed once.
fn getfile_against_dup2(m: Mutant, made: Made) {
    model2(move || {
        let (t, opened) = table_with(m, made, &[0, 1]);
        let [(zero, a), (one, b)]: [_; 2] = opened.try_into().unwrap();
        let t2 = Arc::clone(&t);
        let reader = thread::spawn(move || {
            let f = t2
                .fd_getfile(one)
                .expect("fd 1 is installed throughout dup2");
            assert!(*f.data() <= 1, "fd 1 names file {}", *f.data());
        });
        assert_eq!(t.dup2(zero, one), Ok(one));
        reader.join().unwrap();
        assert_eq!((b.count(), b.closes()), (0, 1));
        assert_eq!(a.count(), 2);
        assert_eq!(
            t.slot(one),
            Slot::Installed {
                serial: a.serial(),
                cloexec: false
            }
        );
        check_all(&[&*t], &[a, b], &[]).unwrap();
    });
}

#[test]
fn getfile_against_dup2_gets_old_or_new() {
    getfile_against_dup2(Mutant::None, Made::Opened);
}

#[test]
fn getfile_copied_against_dup2_gets_old_or_new() {
    getfile_against_dup2(Mutant::None, Made::Forked);
}

#[test]
fn getfile_snapshotted_against_dup2_gets_old_or_new() {
    getfile_against_dup2(Mutant::None, Made::Snapshotted);
}

#[test]
#[should_panic(expected = "after closef")]
fn mutant_fref_after_zero_is_caught_by_dup2() {
    getfile_against_dup2(Mutant::FrefAfterZero, Made::Opened);
}

#[test]
#[should_panic(expected = "installed throughout dup2")]
fn mutant_unpublish_on_replace_is_caught() {
    getfile_against_dup2(Mutant::UnpublishOnReplace, Made::Opened);
}

/// fd_getfile against fdrelease and a new file at the same number, which
/// replaces the slot's full block: the lookup gets the old file, the new
/// one or EBADF, never a dead one.
#[test]
fn getfile_against_fdrelease_and_reuse() {
    model2(|| {
        let t = Arc::new(Filedesc::new(4));
        let (zero, a) = open(&t, 0);
        let t2 = Arc::clone(&t);
        let reader = thread::spawn(move || match t2.fd_getfile(zero) {
            Ok(f) => assert!(matches!(*f.data(), 0 | 2)),
            Err(e) => assert_eq!(e, Errno::EBADF),
        });
        t.fdrelease(zero).unwrap();
        let (again, c) = open(&t, 2);
        assert_eq!(again, zero);
        reader.join().unwrap();
        assert_eq!((a.count(), a.closes()), (0, 1));
        assert_eq!(c.count(), 1);
        check_all(&[&*t], &[a, c], &[]).unwrap();
    });
}

/// The same race inside one block: fd 0's block has a free cell, so the
/// new file goes into the next cell of the block the reader may hold. The
/// reader reads which cell is installed, then counts that cell's file: it
/// gets the closed file only while it is still alive (counted before the
/// close's FRELE), the new one, or EBADF; a cell it named is never
/// another file (no recheck needed), and never empty.
fn getfile_against_reuse_in_block(m: Mutant) {
    model2(move || {
        let t = Arc::new(Filedesc::with_mutant(4, m));
        let (zero, a) = open(&t, 0);
        t.fdrelease(zero).unwrap();
        let (_, b) = open(&t, 1); // cell 0 of a new block of 2
        let t2 = Arc::clone(&t);
        let reader = thread::spawn(move || match t2.fd_getfile(zero) {
            // The use: `*f` checks the file is alive.
            Ok(f) => assert!(matches!(*f.data(), 1 | 2), "got file {}", *f.data()),
            Err(e) => assert_eq!(e, Errno::EBADF),
        });
        t.fdrelease(zero).unwrap();
        let (again, c) = open(&t, 2); // cell 1 of the same block
        assert_eq!(again, zero);
        reader.join().unwrap();
        assert_eq!((b.count(), b.closes()), (0, 1));
        assert_eq!(c.count(), 1);
        check_all(&[&*t], &[a, b, c], &[]).unwrap();
    });
}

#[test]
fn getfile_against_reuse_in_block_never_sees_another_file() {
    getfile_against_reuse_in_block(Mutant::None);
}

#[test]
#[should_panic(expected = "before its file is there")]
fn mutant_name_before_fill_is_caught() {
    getfile_against_reuse_in_block(Mutant::NameBeforeFill);
}

#[test]
#[should_panic(expected = "after closef")]
fn mutant_fref_after_zero_is_caught_by_reuse_in_block() {
    getfile_against_reuse_in_block(Mutant::FrefAfterZero);
}

/// falloc's larval window: another thread's fd_getfile never sees the file
/// before fdinsert. The creator sets `data` between the two, as a caller
/// fills in a new file; a reader that got it early could see it unset.
fn larval_invisible(m: Mutant) {
    model2(move || {
        let t: Arc<Filedesc<AtomicU32>> = Arc::new(Filedesc::with_mutant(4, m));
        let t2 = Arc::clone(&t);
        let creator = thread::spawn(move || {
            let l = t2.falloc(AtomicU32::new(0)).unwrap();
            l.arc().data().store(1, Ordering::Relaxed);
            drop(l.fdinsert(false));
        });
        if let Ok(f) = t.fd_getfile(fd(0)) {
            assert_eq!(
                f.data().load(Ordering::Relaxed),
                1,
                "fd_getfile saw a larval file"
            );
        }
        creator.join().unwrap();
        let f = t.used().pop().unwrap().2;
        assert_eq!(f.count(), 1);
        check_all(&[&*t], &[f], &[]).unwrap();
    });
}

#[test]
fn larval_is_invisible() {
    larval_invisible(Mutant::None);
}

#[test]
#[should_panic(expected = "saw a larval file")]
fn mutant_publish_larval_is_caught() {
    larval_invisible(Mutant::PublishLarval);
}

/// dup2 onto a larval slot is EBUSY, and only then: before the falloc it
/// takes the number (falloc then gets the next one, in a new chunk), after
/// the fdinsert it replaces the new file.
#[test]
fn dup2_onto_larval_is_ebusy() {
    static SAW_EBUSY: StdBool = StdBool::new(false);
    model2(|| {
        let t = Arc::new(Filedesc::new(4));
        let (zero, a) = open(&t, 0);
        let t2 = Arc::clone(&t);
        let creator = thread::spawn(move || open(&t2, 1));
        let r = t.dup2(zero, fd(1));
        let (at, b) = creator.join().unwrap();
        match (r, at.get()) {
            (Err(Errno::EBUSY), 1) => {
                SAW_EBUSY.store(true, std::sync::atomic::Ordering::Relaxed);
                assert_eq!((a.count(), b.count()), (1, 1));
            }
            (Ok(_), 1) => assert_eq!((a.count(), b.closes()), (2, 1), "replaced after fdinsert"),
            (Ok(_), 2) => assert_eq!((a.count(), b.count()), (2, 1), "dup2 came first"),
            other => panic!("dup2 -> {:?}, falloc -> fd {}", other.0, other.1),
        }
        check_all(&[&*t], &[a, b], &[]).unwrap();
    });
    assert!(
        SAW_EBUSY.load(std::sync::atomic::Ordering::Relaxed),
        "no interleaving hit the larval window"
    );
}

/// A lookup while falloc grows the table: the new chunk is published once,
/// and the lookup sees EBADF or the installed file.
#[test]
fn getfile_against_growth() {
    model2(|| {
        let t = Arc::new(Filedesc::new(6));
        let (_, a) = open(&t, 0);
        let (_, b) = open(&t, 1);
        let t2 = Arc::clone(&t);
        let creator = thread::spawn(move || open(&t2, 2));
        match t.fd_getfile(fd(2)) {
            Ok(f) => assert_eq!(*f.data(), 2),
            Err(e) => assert_eq!(e, Errno::EBADF),
        }
        let (at, c) = creator.join().unwrap();
        assert_eq!((at, t.capacity()), (fd(2), 6), "chunk 1 (4 slots) was made");
        check_all(&[&*t], &[a, b, c], &[]).unwrap();
    });
}
