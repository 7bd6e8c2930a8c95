//! Finding what is shared with `kcmp(2)`, in few calls.
//!
//! `kcmp` answers 0 (equal), 1 or 2 (less or greater, in the kernel's
//! obfuscated pointer order): a total order. So the classes of equal
//! objects are found by binary insertion: each item is looked up among the
//! classes found so far, kept sorted by that order, and either joins the
//! one it equals or is inserted as a new class. An item costs at most
//! `ceil(log2(k + 1))` calls among `k` classes, and one call when every
//! item is the same object (a file inherited by 100 processes). Sorting
//! first and comparing neighbours after, as this module did before, costs
//! about `n log2 n` calls plus `n - 1` whatever the classes.
//!
//! Files are found in two rounds. Descriptors are first grouped by a cheap
//! key (mount, inode, position, status flags), which equal files share: a
//! descriptor alone in its key needs no call. Inside a key, each table's
//! descriptors are classified among themselves first (a `dup` joins its
//! original in one call), and only one descriptor per class found goes on
//! to the classification across tables. Tables are read once, so nothing
//! is compared inside one shared table twice.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering as Atomic};
use std::time::Instant;

use super::super::sys::{self, Kcmp};
use super::procfs::FdEntry;

/// kcmp calls made and the time they took, shared by worker threads.
#[derive(Debug, Default)]
pub struct Counter {
    pub calls: AtomicU64,
    pub nanos: AtomicU64,
}

/// A kcmp call that failed: the two processes it compared, and why.
#[derive(Debug)]
pub struct KcmpFailure {
    pub pids: (i32, i32),
    /// The indexes compared (descriptor numbers, for `KCMP_FILE`).
    pub idx: (u64, u64),
    pub source: io::Error,
}

/// One kcmp call of type `ty`, counted.
fn kcmp(c: &Counter, ty: libc::c_int, a: (i32, u64), b: (i32, u64)) -> Result<Kcmp, KcmpFailure> {
    let t = Instant::now();
    let r = sys::kcmp(a.0, b.0, ty, a.1, b.1);
    c.calls.fetch_add(1, Atomic::Relaxed);
    c.nanos
        .fetch_add(t.elapsed().as_nanos() as u64, Atomic::Relaxed);
    r.map_err(|source| KcmpFailure {
        pids: (a.0, b.0),
        idx: (a.1, b.1),
        source,
    })
}

/// The class of each item under kcmp `ty`, numbered from 0 in order of
/// first appearance; items are (pid, index) pairs as kcmp takes them.
///
/// Errors: the first kcmp call that failed.
pub fn classify(
    items: &[(i32, u64)],
    ty: libc::c_int,
    c: &Counter,
) -> Result<Vec<usize>, KcmpFailure> {
    let mut class = vec![0; items.len()];
    // Items that head a class, sorted by kcmp order, with their class.
    let mut heads: Vec<(usize, usize)> = Vec::new();
    let mut classes = 0;
    for (i, &item) in items.iter().enumerate() {
        let (mut lo, mut hi) = (0, heads.len());
        let mut found = None;
        while lo < hi {
            let mid = (lo + hi) / 2;
            match kcmp(c, ty, item, items[heads[mid].0])? {
                Kcmp::Order(Ordering::Equal) => {
                    found = Some(heads[mid].1);
                    break;
                }
                Kcmp::Order(Ordering::Less) => hi = mid,
                Kcmp::Order(Ordering::Greater) => lo = mid + 1,
                // The kernel gave no order (kcmp answered 3): compare pairs.
                Kcmp::Unordered => return classify_pairwise(items, ty, c),
            }
        }
        class[i] = match found {
            Some(k) => k,
            None => {
                heads.insert(lo, (i, classes));
                classes += 1;
                classes - 1
            }
        };
    }
    Ok(class)
}

/// [`classify`] without an order: each item against each class so far.
fn classify_pairwise(
    items: &[(i32, u64)],
    ty: libc::c_int,
    c: &Counter,
) -> Result<Vec<usize>, KcmpFailure> {
    let mut class = vec![0; items.len()];
    let mut heads: Vec<usize> = Vec::new();
    for (i, &item) in items.iter().enumerate() {
        let mut found = None;
        for (k, &h) in heads.iter().enumerate() {
            if kcmp(c, ty, item, items[h])? == Kcmp::Order(Ordering::Equal) {
                found = Some(k);
                break;
            }
        }
        class[i] = found.unwrap_or_else(|| {
            heads.push(i);
            heads.len() - 1
        });
    }
    Ok(class)
}

/// The cheap key equal files share.
fn key(e: &FdEntry) -> (u32, u64, u64, u32) {
    (e.mnt_id, e.ino, e.pos, e.flags)
}

/// The open file of every entry, as the index of the entry that stands
/// for it (the first of its class). `table[i]` is the table entry `i` was
/// read from; entries of one table were read through one process.
///
/// With `threads` > 1, keys are classified on that many threads.
///
/// Errors: the first kcmp call that failed.
pub fn files(
    entries: &[FdEntry],
    table: &[usize],
    c: &Counter,
    threads: usize,
) -> Result<Vec<usize>, KcmpFailure> {
    let mut groups: HashMap<(u32, u64, u64, u32), Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        groups.entry(key(e)).or_default().push(i);
    }
    let mut work: Vec<Vec<usize>> = groups.into_values().filter(|g| g.len() > 1).collect();
    // Largest first, so that threads finish together.
    work.sort_by_key(|g| std::cmp::Reverse(g.len()));
    let mut file_of: Vec<usize> = (0..entries.len()).collect();
    let results: Vec<Result<Vec<(usize, usize)>, KcmpFailure>> = if threads > 1 && work.len() > 1 {
        let next = AtomicU64::new(0);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut out = Vec::new();
                        loop {
                            let k = next.fetch_add(1, Atomic::Relaxed) as usize;
                            let Some(g) = work.get(k) else { break };
                            match group(entries, table, g, c) {
                                Ok(v) => out.extend(v),
                                Err(e) => return Err(e),
                            }
                        }
                        Ok(out)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| match h.join() {
                    Ok(r) => r,
                    Err(p) => std::panic::resume_unwind(p),
                })
                .collect()
        })
    } else {
        work.iter().map(|g| group(entries, table, g, c)).collect()
    };
    for r in results {
        for (i, rep) in r? {
            file_of[i] = rep;
        }
    }
    Ok(file_of)
}

/// The classes of one key's entries: within each table first, then one
/// entry per class across tables. Returns (entry, representative) pairs.
fn group(
    entries: &[FdEntry],
    table: &[usize],
    members: &[usize],
    c: &Counter,
) -> Result<Vec<(usize, usize)>, KcmpFailure> {
    let at = |i: usize| (entries[i].pid, entries[i].fd as u64);
    let mut by_table: Vec<(usize, Vec<usize>)> = Vec::new();
    for &i in members {
        match by_table.iter_mut().find(|(t, _)| *t == table[i]) {
            Some((_, v)) => v.push(i),
            None => by_table.push((table[i], vec![i])),
        }
    }
    // Round 1: within each table; one head per class goes on.
    let mut heads: Vec<usize> = Vec::new();
    let mut head_of: Vec<(usize, usize)> = Vec::new();
    for (_, v) in &by_table {
        if v.len() == 1 {
            heads.push(v[0]);
            head_of.push((v[0], v[0]));
            continue;
        }
        let items: Vec<(i32, u64)> = v.iter().map(|&i| at(i)).collect();
        let cls = classify(&items, sys::KCMP_FILE, c)?;
        let mut first: HashMap<usize, usize> = HashMap::new();
        for (k, &i) in v.iter().enumerate() {
            let h = *first.entry(cls[k]).or_insert_with(|| {
                heads.push(i);
                i
            });
            head_of.push((i, h));
        }
    }
    // Round 2: the heads across tables.
    let items: Vec<(i32, u64)> = heads.iter().map(|&i| at(i)).collect();
    let cls = classify(&items, sys::KCMP_FILE, c)?;
    let mut rep_of_class: HashMap<usize, usize> = HashMap::new();
    let mut rep_of_head: HashMap<usize, usize> = HashMap::new();
    for (k, &h) in heads.iter().enumerate() {
        let rep = *rep_of_class.entry(cls[k]).or_insert(h);
        rep_of_head.insert(h, rep);
    }
    Ok(head_of
        .into_iter()
        .map(|(i, h)| (i, rep_of_head[&h]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn binary_insertion_finds_dups_and_separate_opens() {
        let me = std::process::id() as i32;
        let a = std::fs::File::open("/dev/null").unwrap();
        let b = a.try_clone().unwrap();
        let others: Vec<std::fs::File> = (0..6)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let c2 = others[2].try_clone().unwrap();
        let mut items = vec![(me, a.as_raw_fd() as u64)];
        items.extend(others.iter().map(|f| (me, f.as_raw_fd() as u64)));
        items.push((me, b.as_raw_fd() as u64));
        items.push((me, c2.as_raw_fd() as u64));
        let c = Counter::default();
        let cls = classify(&items, sys::KCMP_FILE, &c).unwrap();
        assert_eq!(cls, vec![0, 1, 2, 3, 4, 5, 6, 0, 3]);
        // Seven classes: binary insertion costs at most 0+1+2+2+3+3+3 for
        // them, and at most 3 for each of the two that join one.
        let calls = c.calls.load(Atomic::Relaxed);
        assert!(calls <= 14 + 6, "{calls} calls");
    }

    #[test]
    fn one_file_everywhere_costs_one_call_each() {
        let me = std::process::id() as i32;
        let a = std::fs::File::open("/dev/null").unwrap();
        let dups: Vec<std::fs::File> = (0..20).map(|_| a.try_clone().unwrap()).collect();
        let items: Vec<(i32, u64)> = dups.iter().map(|f| (me, f.as_raw_fd() as u64)).collect();
        let c = Counter::default();
        assert!(classify(&items, sys::KCMP_FILE, &c)
            .unwrap()
            .iter()
            .all(|&k| k == 0));
        assert_eq!(c.calls.load(Atomic::Relaxed), 19);
    }
}
