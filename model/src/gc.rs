//! The unix garbage collector: files in flight that nobody can receive.
//!
//! A socket sent over itself, or two sockets sent over each other, keep each
//! other alive through the references in their queues after every descriptor
//! is closed. Counting alone never frees them. Like Linux's `unix_gc`, the
//! collector runs when a socket is released while files are in flight. It
//! marks every file a process can still reach: a file held by a table or a
//! caller, and everything in flight in a reachable socket's queue. Then it
//! purges the queues of the unreachable sockets.
//!
//! Linux 6.10 and later run the collector from a work queue, so for a moment
//! after the release the garbage may still be there. The model collects at
//! once, which is one of the outcomes Linux allows, unless its work is
//! deferred (see `deferred`): then garbage waits for the collector's two
//! phases, `take_garbage` (here) and `drop_hitlist` (in `deferred`).
//!
//! Floor: above the world, below the file(9) layer. Marking and purging
//! only read and empty queues; dropping the references the purge took out
//! is the file(9) layer's work (`descrip::release`), which calls
//! [`World::unp_gc`] and not the other way round.

use std::collections::{BTreeMap, BTreeSet};

use crate::file::FileKind;
use crate::ids::FileId;
use crate::trace::TraceEvent;
use crate::world::World;

impl World {
    /// References in flight, per file.
    pub fn in_flight_counts(&self) -> BTreeMap<FileId, u32> {
        let mut n = BTreeMap::new();
        for (_, s) in self.socks.iter() {
            for f in s.queued_files() {
                *n.entry(f).or_insert(0) += 1;
            }
        }
        n
    }

    /// Files that no process can reach any more: every reference to them is
    /// in flight in a queue that no process can receive from.
    pub fn unreachable(&self) -> BTreeSet<FileId> {
        let inflight = self.in_flight_counts();
        if inflight.is_empty() {
            return BTreeSet::new();
        }
        let mut marked = BTreeSet::new();
        let mut stack: Vec<FileId> = Vec::new();
        for (id, file) in self.files() {
            if file.count() > inflight.get(&id).copied().unwrap_or(0) {
                marked.insert(id);
                stack.push(id);
            }
        }
        #[cfg(any(test, feature = "mutants"))]
        if self.mutant == crate::mutant::Mutant::GcOverEager {
            stack.clear();
        }
        while let Some(f) = stack.pop() {
            // A listener reaches what waits in its embryos' queues, as
            // Linux's collector follows a listener to its embryos.
            if let FileKind::Socket(s) = self.file(f).kind {
                for g in self.socks.in_flight(s) {
                    if marked.insert(g) {
                        stack.push(g);
                    }
                }
            }
        }
        inflight
            .into_keys()
            .filter(|f| !marked.contains(f))
            .collect()
    }

    /// The deferred collector's first phase: under the collector's lock,
    /// it empties the queues of the unreachable sockets into its hitlist
    /// (Linux's `unix_collect_skb`). The sockets stay alive until the
    /// second phase, so a send into one of them still succeeds in between,
    /// and lands in a queue the collector has already emptied.
    pub fn take_garbage(&mut self) {
        let taken = self.unp_gc();
        self.gc_hitlist.extend(taken);
    }

    /// References the collector holds between its two phases.
    pub fn hitlist(&self) -> &[FileId] {
        &self.gc_hitlist
    }

    /// `unix_gc`: purges the queues of unreachable sockets and returns the
    /// references that were in flight in them, for the caller to drop
    /// (`descrip::release`) or to hold (the deferred collector's hitlist).
    pub(crate) fn unp_gc(&mut self) -> Vec<FileId> {
        let garbage = self.unreachable();
        let mut taken = Vec::new();
        for f in garbage {
            if let FileKind::Socket(s) = self.file(f).kind {
                taken.extend(self.socks.purge_reachable(s));
            }
        }
        if !taken.is_empty() {
            self.gc_collections += 1;
            let dropped = taken.len();
            self.record(|_| TraceEvent::UnpGc { dropped });
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use crate::call::Call;
    use crate::mutant::Mutant;
    use crate::world::World;
    use crate::{invariants, SockType};

    /// End 1 in flight in end 0's queue, end 0 still held: a process can
    /// receive end 1, so it is not garbage.
    fn one_end_in_flight() -> World {
        let mut w = World::new();
        let p = w.spawn("p").unwrap();
        w.call(
            p,
            &Call::Socketpair {
                ty: SockType::Stream,
                flags: crate::SockFlags::default(),
            },
        )
        .unwrap();
        w.call(
            p,
            &Call::Sendfds {
                sock: 1,
                fds: vec![1],
            },
        )
        .unwrap();
        w.call(p, &Call::Close { fd: 1 }).unwrap();
        w
    }

    #[test]
    fn an_over_eager_collector_is_caught_by_the_invariants() {
        let mut w = one_end_in_flight();
        assert!(w.unreachable().is_empty());
        invariants::check_all(&w).unwrap();
        w.plant(Mutant::GcOverEager);
        let v = invariants::check_all(&w).unwrap_err();
        assert!(
            v.to_string().contains("collector_spares_the_reachable"),
            "{v}"
        );
    }
}
