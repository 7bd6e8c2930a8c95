//! Unit tests of the concurrent table, run one thread at a time (the
//! races are loom's, in `loom_tests`, and the stress test's, in
//! `model/tests/mt_stress.rs`).

use std::sync::Arc;

use super::invariants::{self, check_all};
use super::test_util::{fd, open};
use super::{fdget, Fdget, File, Filedesc, Hold, Slot};
use crate::mutant::Mutant;
use crate::Errno;

#[test]
fn falloc_counts_two_and_stays_invisible_until_fdinsert() {
    let t = Filedesc::new(100);
    let (zero, a) = open(&t, 0);
    let l = t.falloc(1).unwrap();
    assert_eq!(l.fd(), fd(1));
    assert_eq!(l.arc().count(), 2, "one for the table, one for the caller");
    assert_eq!(
        t.slot(fd(1)),
        Slot::Larval {
            serial: l.arc().serial()
        }
    );
    assert_eq!(
        t.fd_getfile(fd(1)).err(),
        Some(Errno::EBADF),
        "larval is invisible"
    );
    assert_eq!(
        t.dup2(zero, fd(1)),
        Err(Errno::EBUSY),
        "Linux do_dup2, OpenBSD dodup3"
    );
    assert_eq!(t.fdrelease(fd(1)), Err(Errno::EBADF));
    let b = Arc::clone(l.arc());
    check_all(&[&t], &[Arc::clone(&a), Arc::clone(&b)], &[&b]).unwrap();
    let h = l.fdinsert(true);
    assert_eq!(
        t.slot(fd(1)),
        Slot::Installed {
            serial: b.serial(),
            cloexec: true
        }
    );
    assert_eq!(t.fd_getfile(fd(1)).unwrap().serial(), b.serial());
    drop(h);
    assert_eq!(b.count(), 1);
    check_all(&[&t], &[a, b], &[]).unwrap();
}

#[test]
fn fdabort_and_drop_undo_falloc() {
    let t = Filedesc::new(100);
    let l = t.falloc(7).unwrap();
    let f = Arc::clone(l.arc());
    l.fdabort();
    assert_eq!(
        (f.count(), f.closes()),
        (0, 1),
        "both references dropped, closef once"
    );
    let l = t.falloc(8).unwrap();
    assert_eq!(l.fd(), fd(0), "the number came back, and the hint with it");
    let g = Arc::clone(l.arc());
    drop(l);
    assert_eq!((g.count(), g.closes()), (0, 1));
    assert!(t.used().is_empty());
    check_all(&[&t], &[f, g], &[]).unwrap();
}

#[test]
fn close_while_held_frees_at_the_last_frele_once() {
    let t = Filedesc::new(100);
    let (n, f) = open(&t, 0);
    let held = t.fd_getfile(n).unwrap();
    assert_eq!(f.count(), 2);
    t.fdrelease(n).unwrap();
    assert_eq!(
        t.fd_getfile(n).err(),
        Some(Errno::EBADF),
        "the descriptor is gone at once"
    );
    assert_eq!((f.count(), f.closes()), (1, 0), "the file lives");
    check_all(&[&t], &[Arc::clone(&f)], &[&held]).unwrap();
    drop(held);
    assert_eq!((f.count(), f.closes()), (0, 1));
    check_all(&[&t], &[f], &[]).unwrap();
}

#[test]
fn dup2_replaces_the_slot_and_closes_the_old_file_once() {
    let t = Filedesc::new(100);
    let (zero, a) = open(&t, 0);
    let (one, b) = open(&t, 1);
    assert_eq!(t.dup2(zero, zero), Ok(zero), "same number: nothing to do");
    assert_eq!(t.dup2(fd(5), one), Err(Errno::EBADF));
    assert_eq!(t.dup2(zero, fd(100)), Err(Errno::EBADF), "beyond the limit");
    t.set_cloexec(one, true).unwrap();
    assert_eq!(t.dup2(zero, one), Ok(one));
    assert_eq!((b.count(), b.closes()), (0, 1));
    assert_eq!(a.count(), 2);
    assert_eq!(
        t.slot(one),
        Slot::Installed {
            serial: a.serial(),
            cloexec: false
        },
        "dup2 clears close-on-exec"
    );
    assert_eq!(
        t.dup2(zero, fd(70)),
        Ok(fd(70)),
        "onto a number beyond the made chunks"
    );
    assert_eq!(a.count(), 3);
    assert_eq!(
        t.dup(zero, 0, false),
        Ok(fd(2)),
        "dup takes the lowest free number"
    );
    assert_eq!(t.dup(zero, 70, true), Ok(fd(71)));
    assert_eq!(
        t.slot(fd(71)),
        Slot::Installed {
            serial: a.serial(),
            cloexec: true
        }
    );
    assert_eq!(
        t.dup(fd(3), 0, false),
        Err(Errno::EBADF),
        "EBADF before EINVAL"
    );
    assert_eq!(t.dup(zero, 100, false), Err(Errno::EINVAL));
    check_all(&[&t], &[a, b], &[]).unwrap();
}

#[test]
fn alloc_takes_the_lowest_and_keeps_the_hint() {
    let t = Filedesc::new(6);
    let files: Vec<_> = (0..5).map(|i| open(&t, i).1).collect();
    t.fdrelease(fd(1)).unwrap();
    t.fdrelease(fd(3)).unwrap();
    assert_eq!(open(&t, 9).0, fd(1));
    assert_eq!(t.dup(fd(0), 2, false), Ok(fd(3)));
    assert_eq!(t.dup(fd(0), 0, false), Ok(fd(5)));
    assert_eq!(t.falloc(10).err(), Some(Errno::EMFILE));
    assert_eq!(t.dup(fd(0), 0, false), Err(Errno::EMFILE));
    t.check().unwrap();
    drop(files);
}

#[test]
fn grows_chunk_by_chunk_without_moving_a_slot() {
    let t = Filedesc::new(1000);
    let (_, a) = open(&t, 0);
    assert_eq!(t.capacity(), 64);
    for _ in 1..64 + 128 + 5 {
        t.dup(fd(0), 0, false).unwrap();
    }
    assert_eq!(t.capacity(), 64 + 128 + 256);
    // Every number resolves to the file, across the three chunks.
    for n in 0..64 + 128 + 5 {
        assert_eq!(t.fd_getfile(fd(n)).unwrap().serial(), a.serial(), "fd {n}");
    }
    assert_eq!(t.fd_getfile(fd(64 + 128 + 5)).err(), Some(Errno::EBADF));
    assert_eq!(
        t.fd_getfile(fd(999)).err(),
        Some(Errno::EBADF),
        "in no made chunk"
    );
    assert_eq!(t.fd_getfile(fd(u32::MAX)).err(), Some(Errno::EBADF));
    assert_eq!(t.dup2(fd(0), fd(999)), Ok(fd(999)));
    assert_eq!(t.fd_getfile(fd(999)).unwrap().serial(), a.serial());
    assert_eq!(t.capacity(), 64 * 31, "999 is in chunk 4, slots 960..1984");
    check_all(&[&t], &[a], &[]).unwrap();
}

#[test]
fn locate_lays_chunks_end_to_end() {
    let mut expect = Vec::new();
    for k in 0..6 {
        for off in 0..64usize << k {
            expect.push((k, off));
        }
    }
    for (n, want) in expect.iter().enumerate() {
        assert_eq!(super::filedesc::locate(n), *want, "fd {n}");
    }
}

#[test]
fn fdcopy_copies_installed_slots_with_a_reference_each() {
    let t = Filedesc::new(200);
    let (zero, a) = open(&t, 0);
    t.set_cloexec(zero, true).unwrap();
    t.dup2(zero, fd(150)).unwrap();
    let l = t.falloc(1).unwrap();
    let c = t.fdcopy();
    assert_eq!(a.count(), 4, "two slots in each table");
    assert_eq!(
        c.slot(zero),
        Slot::Installed {
            serial: a.serial(),
            cloexec: true
        }
    );
    assert_eq!(
        c.slot(l.fd()),
        Slot::Free,
        "larval slots are not copied (Linux dup_fd)"
    );
    assert_eq!(c.falloc(2).unwrap().fd(), fd(1), "the copy's hint");
    let found = c.fd_getfile(fd(150)).unwrap();
    assert_eq!(found.serial(), a.serial(), "published from the start");
    drop(found);
    // A copied slot's block has one cell: the next install replaces it.
    assert_eq!(c.dup2(fd(150), zero), Ok(zero));
    assert_eq!(a.count(), 4, "the same file, replaced by itself");
    let b = Arc::clone(l.arc());
    check_all(&[&t, &c], &[Arc::clone(&a), Arc::clone(&b)], &[&b]).unwrap();
    drop(c);
    assert_eq!(a.count(), 2, "fdfree of the copy dropped its references");
    drop(l);
    drop(t);
    assert_eq!(
        (a.count(), a.closes()),
        (0, 1),
        "the last table's drop closed the rest"
    );
}

#[test]
fn fdget_borrows_without_a_count_only_when_unshared() {
    let mut t = Arc::new(Filedesc::new(100));
    let (n, f) = open(&t, 0);
    match fdget(&mut t, n).unwrap() {
        Fdget::Borrowed(b) => {
            assert_eq!((b.serial(), b.count()), (f.serial(), 1), "no count taken")
        }
        Fdget::Counted(_) => panic!("an unshared table took the shared path"),
    }
    let other = Arc::clone(&t); // fdshare
    match fdget(&mut t, n).unwrap() {
        Fdget::Counted(r) => assert_eq!(r.count(), 2, "FREF on the shared path"),
        Fdget::Borrowed(_) => panic!("a shared table took the fast path"),
    }
    drop(other);
    assert!(matches!(fdget(&mut t, n), Ok(Fdget::Borrowed(_))));
    assert_eq!(fdget(&mut t, fd(9)).err(), Some(Errno::EBADF));
    let table = Arc::get_mut(&mut t).unwrap();
    let l = table.falloc(2).unwrap();
    let at = l.fd();
    l.fdabort();
    assert_eq!(table.fd_getfile_unshared(at).err(), Some(Errno::EBADF));
    assert_eq!(f.count(), 1);
}

#[test]
fn fdinstall_moves_a_reference_between_tables() {
    let (t, u) = (Filedesc::new(100), Filedesc::new(1));
    let (n, f) = open(&t, 0);
    let h = t.fd_getfile(n).unwrap().into_hold();
    assert_eq!(f.count(), 2);
    let h2 = h.fref();
    assert_eq!(u.fdinstall(h, false), Ok(fd(0)));
    assert_eq!(f.count(), 3, "the hold became u's slot reference");
    assert_eq!(u.fdinstall(h2, false), Err(Errno::EMFILE));
    assert_eq!(f.count(), 2, "a failed install releases the reference");
    check_all(&[&t, &u], &[Arc::clone(&f)], &[]).unwrap();
    t.fdrelease(n).unwrap();
    drop(u);
    assert_eq!(f.closes(), 1);
}

#[test]
fn invariants_report_a_leaked_reference_and_a_file_back_from_the_dead() {
    let t = Filedesc::new(100);
    let (n, f) = open(&t, 0);
    std::mem::forget(t.fd_getfile(n).unwrap());
    let e = invariants::refcounts_match(&[&t], &[Arc::clone(&f)], &[]).unwrap_err();
    assert!(e.detail.contains("count 2 but 1 slots + 0 held"), "{e}");
    let h: Hold<u32> = t.fd_getfile(n).unwrap().into_hold();
    let e = invariants::refcounts_match(&[&t], &[], &[&h]).unwrap_err();
    assert!(e.detail.contains("not a known file"), "{e}");
    drop(h);
    invariants::closef_once(&[Arc::clone(&f)]).unwrap();
    // A file brought back after closef (the FrefAfterZero mutant's FREF).
    let g = Arc::new(File::new(0));
    g.frele();
    g.frele();
    invariants::closef_once(&[Arc::clone(&g)]).unwrap();
    g.fref_unconditional();
    let e = invariants::closef_once(&[f, g]).unwrap_err();
    assert!(e.detail.contains("count 1 and closef ran 1 times"), "{e}");
}

#[test]
#[should_panic(expected = "use after closef")]
fn frele_early_mutant_is_caught_even_without_a_race() {
    let t = Filedesc::with_mutant(100, Mutant::FreleEarly);
    let (n, _) = open(&t, 0);
    let r = t.fd_getfile(n).unwrap();
    t.fdrelease(n).unwrap();
    let _ = r.serial();
}

#[test]
fn fref_after_zero_mutant_needs_a_race_to_show() {
    // Without a close between its load and its count, the mutant's plain
    // increment is right: only an interleaving shows the bug (loom does).
    let t = Filedesc::with_mutant(100, Mutant::FrefAfterZero);
    let (n, f) = open(&t, 0);
    let r = t.fd_getfile(n).unwrap();
    t.fdrelease(n).unwrap();
    assert_eq!(*r.data(), 0);
    drop(r);
    assert_eq!((f.count(), f.closes()), (0, 1));
}

#[test]
fn publish_larval_mutant_is_caught_by_the_table_check() {
    let t = Filedesc::with_mutant(100, Mutant::PublishLarval);
    let l = t.falloc(0).unwrap();
    assert!(
        t.fd_getfile(l.fd()).is_ok(),
        "the bug: a larval file is visible"
    );
    let e = invariants::tables_consistent(&[&t]).unwrap_err();
    assert!(e.detail.contains("slot 0 is larval but publishes"), "{e}");
    l.fdabort();
}

#[test]
fn a_busy_slot_fills_its_block_then_replaces_it() {
    let t = Filedesc::new(100);
    let mut dead = Vec::new();
    // Blocks of 1, 2, 4, 8, 16, then 16 again: 1 + 2 + 4 + 8 + 16 installs
    // fill the first five.
    for i in 0..31 + 3 {
        let (n, f) = open(&t, i);
        assert_eq!(n, fd(0));
        assert_eq!(t.fd_getfile(n).unwrap().serial(), f.serial());
        t.fdrelease(n).unwrap();
        assert_eq!(t.fd_getfile(n).err(), Some(Errno::EBADF));
        t.check().unwrap();
        dead.push(f);
    }
    // Memory only: the files are dead (closef ran once), and only those in
    // the slot's current block (installs 31..34) are still in a cell.
    for (i, f) in dead.iter().enumerate() {
        assert_eq!((f.count(), f.closes()), (0, 1), "file {i}");
        let cells = Arc::strong_count(f) - 1;
        assert_eq!(cells, usize::from(i >= 31), "file {i} is in {cells} cells");
    }
    check_all(&[&t], &dead, &[]).unwrap();
}

#[test]
fn dup2_onto_an_installed_slot_in_a_full_block_replaces_the_block() {
    let t = Filedesc::new(100);
    let (zero, a) = open(&t, 0);
    let (one, b) = open(&t, 1);
    let before = t.fd_getfile(one).unwrap();
    assert_eq!(t.dup2(zero, one), Ok(one));
    // The guard still has fd 1's old block, which names b: b lives until
    // this FRELE, then closef runs once.
    assert_eq!(before.serial(), b.serial());
    assert_eq!((b.count(), b.closes()), (1, 0));
    drop(before);
    assert_eq!((b.count(), b.closes()), (0, 1));
    assert_eq!(t.fd_getfile(one).unwrap().serial(), a.serial());
    // The new block has room: the next dup2 fills its second cell.
    let (two, c) = open(&t, 2);
    assert_eq!(t.dup2(two, one), Ok(one));
    assert_eq!(t.fd_getfile(one).unwrap().serial(), c.serial());
    assert_eq!(a.count(), 1);
    check_all(&[&t], &[a, b, c], &[]).unwrap();
}

/// A copy publishes its slots from its base until each is written: a
/// lookup finds the copied file, a close makes the number free for every
/// reader, a new file or a dup2 there is found instead, and the base
/// never shows through again.
fn copied_slots_until_written(m: Mutant) -> Filedesc<u32> {
    let t = Filedesc::with_mutant(200, m);
    let (zero, a) = open(&t, 0);
    let (one, b) = open(&t, 1);
    t.dup2(zero, fd(150)).unwrap();
    let c = t.fdcopy();
    drop(t);
    for (n, f) in [(zero, &a), (one, &b), (fd(150), &a)] {
        assert_eq!(c.fd_getfile(n).unwrap().serial(), f.serial(), "fd {n}");
    }
    c.check().unwrap();
    // A use reference taken through the base outlives the close.
    let held = c.fd_getfile(zero).unwrap();
    c.fdrelease(zero).unwrap();
    assert_eq!(c.fd_getfile(zero).err(), Some(Errno::EBADF), "closed");
    assert_eq!(held.serial(), a.serial());
    drop(held);
    c.check().unwrap();
    // The closed number takes the next file, in the vacant block's cell.
    let (again, d) = open(&c, 3);
    assert_eq!(again, zero);
    assert_eq!(c.fd_getfile(zero).unwrap().serial(), d.serial());
    // dup2 over a copied slot replaces the base's file.
    assert_eq!(c.dup2(fd(150), one), Ok(one));
    assert_eq!(c.fd_getfile(one).unwrap().serial(), a.serial());
    assert_eq!((b.count(), b.closes()), (0, 1), "b's last slot was fd 1");
    c.check().unwrap();
    check_all(&[&c], &[a, b, d], &[]).unwrap();
    c
}

#[test]
fn a_copy_publishes_from_its_base_until_a_slot_is_written() {
    drop(copied_slots_until_written(Mutant::None));
}

#[test]
#[should_panic(expected = "closed")]
fn close_copied_in_place_mutant_is_caught() {
    drop(copied_slots_until_written(Mutant::CloseCopiedInPlace));
}

#[test]
fn a_copy_makes_no_chunk_until_a_slot_is_written() {
    let t = Filedesc::new(2000);
    for i in 0..1024 {
        open(&t, i);
    }
    let c = t.fdcopy();
    assert_eq!(c.made_chunks(), 0);
    assert_eq!(c.fd_getfile(fd(1000)).unwrap().serial(), {
        let f = t.fd_getfile(fd(1000)).unwrap();
        f.serial()
    });
    c.fdrelease(fd(1000)).unwrap();
    assert_eq!(c.made_chunks(), 1, "only the chunk of fd 1000");
    assert_eq!(c.fd_getfile(fd(1000)).err(), Some(Errno::EBADF));
    assert_eq!(c.fd_getfile(fd(999)).unwrap().serial(), {
        let f = t.fd_getfile(fd(999)).unwrap();
        f.serial()
    });
    c.check().unwrap();
}
