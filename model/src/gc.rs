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
//! phases, `take_garbage` and `drop_hitlist`.

use std::collections::{BTreeMap, BTreeSet};

use crate::descrip::Work;
use crate::file::{FileId, FileKind};
use crate::world::World;

impl World {
    /// References in flight, per file.
    pub fn in_flight_counts(&self) -> BTreeMap<FileId, u32> {
        let mut n = BTreeMap::new();
        for (_, pair) in self.socks.iter() {
            for end in 0..2 {
                for f in pair.in_flight(end) {
                    *n.entry(f).or_insert(0) += 1;
                }
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
        while let Some(f) = stack.pop() {
            if let FileKind::Socket(s, end) = self.file(f).kind {
                for g in self.sock(s).in_flight(end) {
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

    /// Runs the collector now, as Linux's work queue does some time after a
    /// release, and drops what it freed: both phases, and again until
    /// nothing is left to free.
    pub fn collect_garbage(&mut self) {
        self.drop_hitlist();
        loop {
            self.take_garbage();
            if self.gc_hitlist.is_empty() {
                break;
            }
            self.drop_hitlist();
        }
    }

    /// The deferred collector's first phase: under the collector's lock,
    /// it empties the queues of the unreachable sockets into its hitlist
    /// (Linux's `unix_collect_skb`). The sockets stay alive until the
    /// second phase, so a send into one of them still succeeds in between,
    /// and lands in a queue the collector has already emptied.
    pub fn take_garbage(&mut self) {
        let work = self.unp_gc();
        self.gc_hitlist.extend(work.into_iter().map(|(f, _)| f));
    }

    /// The deferred collector's second phase: drops the references in its
    /// hitlist (Linux's `__skb_queue_purge(&hitlist)`), which releases the
    /// unreachable sockets. One that received something since the first
    /// phase is released with data in its queue, so its peer gets
    /// `ECONNRESET`.
    pub fn drop_hitlist(&mut self) {
        let work: Work = std::mem::take(&mut self.gc_hitlist)
            .into_iter()
            .map(|f| (f, "unp_gc"))
            .collect();
        self.release(work);
    }

    /// References the collector holds between its two phases.
    pub fn hitlist(&self) -> &[FileId] {
        &self.gc_hitlist
    }

    /// `unix_gc`: purges the queues of unreachable sockets and returns the
    /// references that were in flight in them, for `release` to drop.
    pub(crate) fn unp_gc(&mut self) -> Work {
        let garbage = self.unreachable();
        let mut work = Work::new();
        for f in garbage {
            if let FileKind::Socket(s, end) = self.file(f).kind {
                let fds = self.sock_mut(s).purge(end);
                work.extend(fds.into_iter().map(|g| (g, "unp_gc")));
            }
        }
        if !work.is_empty() {
            self.gc_collections += 1;
            self.note(|_| format!("unp_gc: {} references in flight dropped", work.len()));
        }
        work
    }
}
