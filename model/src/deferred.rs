//! Work the kernel finishes after the call that started it, from a work
//! queue, and the states that leaves a scenario in.
//!
//! Two pieces of such work change what the language can observe:
//! - the unix garbage collector ([`crate::gc`]): Linux queues `unix_gc`
//!   when any unix socket anywhere in the system is released, so files in
//!   flight that became unreachable are freed at some later moment, and
//!   until then a pipe end held only by them keeps its peer from seeing
//!   EOF or EPIPE. It works in two phases, each a piece here: it takes the
//!   unreachable sockets' queues under its lock, and drops what it took
//!   after; a call can run between the two. A third piece follows: a work
//!   queue cannot tear a file down, so the files whose last reference it
//!   dropped wait for `delayed_fput`, still registered in epoll instances
//!   (which skip them);
//! - a pty's two flip-buffer hops ([`crate::pty`]): the echo of what the
//!   master wrote reaches the master's read buffer at some later moment.
//!
//! By default the model does the work at once, which is one of the
//! outcomes Linux allows, so that `fdlab run` on the model alone gives one
//! answer. With [`World::set_deferred`] it leaves the work pending instead:
//! [`World::pending_work`] lists it, [`World::run_work`] does one piece, and
//! [`World::later_states`] gives every state that doing some of it, in any
//! order, reaches. The comparison with Linux follows all of those states
//! and keeps the ones that answer as Linux did, so it accepts exactly the
//! answers that some timing of the work explains.
//!
//! Each piece is taken to happen between two calls, never inside one: a
//! call looks at the state a piece changes once (a pipe's peer, a pty's
//! read buffer), so a piece that runs during the call looks the same to it
//! as one that ran just before or just after. Work made of steps that a
//! call can fall between is split into pieces, as the collector's phases
//! are.
//!
//! Floor: above the file(9) layer (the collector's second phase drops
//! references with it) and the topology (states are told apart by it);
//! below the invariants and the system calls.

use std::collections::BTreeSet;

use crate::descrip::Work;
use crate::file::FileKind;
use crate::flags::Events;
use crate::ids::PtyId;
use crate::trace::Dropper;
use crate::world::World;

/// One piece of pending work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Deferred {
    /// `unix_gc`, first phase: files in flight are unreachable; the
    /// collector takes them out of their queues.
    Gc,
    /// `unix_gc`, second phase: the collector drops what it took.
    GcDrop,
    /// The slave's `flush_to_ldisc` of a pty (hop 1): input to lines and
    /// echo.
    PtyInput(PtyId),
    /// The master's `flush_to_ldisc` of a pty (hop 2): echo and slave
    /// output to the master's read buffer.
    PtyEcho(PtyId),
    /// `delayed_fput`: the files whose last reference the collector
    /// dropped are torn down (until then they stay registered in epoll
    /// instances, which skip them).
    Fput,
}

/// The most pieces of work [`World::run_all_work`] does before it calls
/// the work endless.
pub const MAX_SETTLE_PIECES: usize = 10_000;

/// The most states [`World::later_states`] explores from one state; more
/// would mean a scenario with many ptys and files in flight at once.
pub const MAX_LATER_STATES: usize = 256;

impl World {
    /// Whether asynchronous work is left pending (see the module docs);
    /// off by default.
    pub fn set_deferred(&mut self, on: bool) {
        self.deferred = on;
    }

    pub fn deferred(&self) -> bool {
        self.deferred
    }

    /// The work that is pending now.
    pub fn pending_work(&self) -> Vec<Deferred> {
        let mut work = Vec::new();
        // One collector at a time (Linux's `gc_in_progress`): the next
        // run waits until this one has dropped its hitlist.
        if !self.gc_hitlist.is_empty() {
            work.push(Deferred::GcDrop);
        } else if !self.unreachable().is_empty() {
            work.push(Deferred::Gc);
        }
        if !self.delayed_fput.is_empty() {
            work.push(Deferred::Fput);
        }
        for (i, p) in self.ptys.iter() {
            if !p.input.is_empty() {
                work.push(Deferred::PtyInput(PtyId(i)));
            }
            if !p.to_master.is_empty() {
                work.push(Deferred::PtyEcho(PtyId(i)));
            }
        }
        work
    }

    /// Does the pending work, a piece at a time in [`World::pending_work`]'s
    /// order, until none is left. Each piece makes progress, so work still
    /// pending after [`MAX_SETTLE_PIECES`] is a bug in the model: the
    /// pieces left are the error, never an endless loop.
    pub fn run_all_work(&mut self) -> Result<(), Vec<Deferred>> {
        for _ in 0..MAX_SETTLE_PIECES {
            match self.pending_work().first() {
                Some(&d) => self.run_work(d),
                None => return Ok(()),
            }
        }
        Err(self.pending_work())
    }

    /// Runs the collector now, as Linux's work queue does some time after a
    /// release, and drops what it freed: both phases, and again until
    /// nothing is left to free.
    pub fn collect_garbage(&mut self) {
        self.drop_hitlist();
        loop {
            while !self.delayed_fput.is_empty() {
                self.run_delayed_fput();
            }
            self.take_garbage();
            if self.gc_hitlist.is_empty() {
                break;
            }
            self.drop_hitlist();
        }
    }

    /// The deferred collector's second phase: drops the references in its
    /// hitlist (Linux's `__skb_queue_purge(&hitlist)`), which releases the
    /// unreachable sockets. One that received something since the first
    /// phase is released with data in its queue, so its peer gets
    /// `ECONNRESET`.
    pub fn drop_hitlist(&mut self) {
        let work: Work = std::mem::take(&mut self.gc_hitlist)
            .into_iter()
            .map(|f| (f, Dropper::Gc))
            .collect();
        // The collector runs from a work queue.
        let was = std::mem::replace(&mut self.in_kworker, true);
        self.release(work);
        self.in_kworker = was;
    }

    /// Does one piece of pending work, as the work queue would.
    pub fn run_work(&mut self, d: Deferred) {
        match d {
            Deferred::Gc => self.take_garbage(),
            Deferred::GcDrop => self.drop_hitlist(),
            Deferred::PtyInput(p) => self.pty_receive_input(p),
            Deferred::PtyEcho(p) => {
                self.pty_flush_to_master(p);
            }
            Deferred::Fput => self.run_delayed_fput(),
        }
        self.flush_wakes();
    }

    /// Every state that doing some of the pending work, in any order,
    /// reaches, other than this one; one world per [`World::fingerprint`].
    /// At most [`MAX_LATER_STATES`]; `None` if there would be more.
    pub fn later_states(&self) -> Option<Vec<World>> {
        if self.pending_work().is_empty() {
            return Some(Vec::new());
        }
        let mut seen = BTreeSet::from([self.fingerprint()]);
        let mut found = Vec::new();
        let mut frontier = vec![self.clone()];
        while let Some(w) = frontier.pop() {
            for d in w.pending_work() {
                let mut next = w.clone();
                next.run_work(d);
                if seen.insert(next.fingerprint()) {
                    if found.len() == MAX_LATER_STATES {
                        return None;
                    }
                    found.push(next.clone());
                    frontier.push(next);
                }
            }
        }
        Some(found)
    }

    /// A description of the state that leaves out the names the model gives
    /// its objects (which depend on the order things were freed in), so
    /// that two histories that differ only in when the pending work ran and
    /// end in the same state get the same fingerprint: the topology, and for
    /// every live file its count, its references in flight, and what is
    /// buffered in it.
    pub fn fingerprint(&self) -> String {
        let inflight = self.in_flight_counts();
        let mut files: Vec<String> = self
            .files()
            .map(|(id, f)| {
                let what = match &f.kind {
                    FileKind::Larval => "larval".to_string(),
                    FileKind::Vnode(_) => format!("vnode at {}", f.offset),
                    FileKind::Eventfd(e) => format!("{e:?}"),
                    FileKind::PtyMaster(p) => format!("master of {:?}", self.pty(*p)),
                    FileKind::PtySlave(p) => format!("slave of {:?}", self.pty(*p)),
                    FileKind::Epoll(e) => {
                        // The ready list, by registered number and file.
                        let ready: Vec<(u32, u64, Events)> = e
                            .ready
                            .iter()
                            .map(|k| (k.0.get(), self.file(k.1).serial, e.interest[k]))
                            .collect();
                        format!("epoll watching {} ready {ready:?}", e.interest.len())
                    }
                    FileKind::Pipe(p, end) => {
                        let p = self.pipe(*p);
                        format!("pipe {end:?} {} {} {}", p.len(), p.reader, p.writer)
                    }
                    FileKind::Socket(s) => {
                        let e = self.sock(*s);
                        let data: usize = e.queue.iter().map(|s| s.data.len()).sum();
                        format!(
                            "socket {:?} {} {} {} {:?} {} {:?} {}",
                            e.state,
                            e.queue.len(),
                            data,
                            e.wmem,
                            e.err,
                            e.shutdown,
                            e.peer.map(|p| self.sock(p).dead),
                            e.pending.len()
                        ) + if e.peer_wake.is_some() {
                            " waiting for room"
                        } else {
                            ""
                        }
                    }
                };
                format!("{} {} {what}", f.count(), inflight.get(&id).unwrap_or(&0))
            })
            .collect();
        files.sort();
        format!(
            "{:?}\n{}\nthe collector holds {}, {} wait for delayed_fput",
            self.topology(),
            files.join("\n"),
            self.gc_hitlist.len(),
            self.delayed_fput.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::{Call, OFlags, SockType, World};

    fn socketpair(w: &mut World, p: crate::Pid) -> (i32, i32) {
        let r = w
            .call(
                p,
                &Call::Socketpair {
                    ty: SockType::Stream,
                    flags: crate::SockFlags::default(),
                },
            )
            .unwrap();
        match r {
            crate::Ret::Ints(v) => (v[0] as i32, v[1] as i32),
            other => panic!("socketpair returned {other:?}"),
        }
    }

    /// A socket sent over its own peer and closed is garbage: deferred, it stays
    /// until the collector runs, and the states after a step are "not yet"
    /// and "collected".
    #[test]
    fn garbage_waits_for_the_collector() {
        let mut w = World::new();
        w.set_deferred(true);
        let p = w.spawn("p").unwrap();
        let (a, b) = socketpair(&mut w, p);
        w.call(
            p,
            &Call::Sendfds {
                sock: a,
                fds: vec![b],
            },
        )
        .unwrap();
        w.call(p, &Call::Close { fd: a }).unwrap();
        w.call(p, &Call::Close { fd: b }).unwrap();
        // `b` sits in its own queue: a socket in flight over itself.
        assert_eq!(w.files().count(), 1, "b lives on in flight");
        assert_eq!(w.pending_work(), vec![super::Deferred::Gc]);
        // Between the phases: out of the queue, held by the collector.
        let mut mid = w.clone();
        mid.run_work(super::Deferred::Gc);
        assert_eq!(mid.hitlist().len(), 1);
        assert_eq!(mid.files().count(), 1);
        assert_eq!(mid.pending_work(), vec![super::Deferred::GcDrop]);
        // Dropped, the file waits for delayed_fput before it is torn down.
        let mut dropped = mid.clone();
        dropped.run_work(super::Deferred::GcDrop);
        assert_eq!(dropped.files().count(), 1);
        assert_eq!(dropped.pending_work(), vec![super::Deferred::Fput]);
        let later = w.later_states().unwrap();
        assert_eq!(later.len(), 3, "between the phases, dropped, and torn down");
        let done = later.iter().find(|l| l.files().count() == 0).unwrap();
        assert!(done.pending_work().is_empty());
        assert!(done.later_states().unwrap().is_empty());
        for s in [&w, &mid, &dropped, done] {
            crate::invariants::check_all(s).unwrap();
        }
    }

    /// A pty with "b" waiting for hop 1 and "a" for hop 2: the later
    /// states are every interleaving of the two hops.
    #[test]
    fn pty_hops_give_every_interleaving() {
        let mut w = World::new();
        w.set_deferred(true);
        let p = w.spawn("p").unwrap();
        let open = Call::Open {
            path: "/dev/ptmx".into(),
            flags: OFlags::RDWR,
            mode: 0,
        };
        w.call(p, &open).unwrap();
        let pty = crate::ids::PtyId(0);
        w.call(
            p,
            &Call::Write {
                fd: 0,
                data: b"a".to_vec(),
            },
        )
        .unwrap();
        w.run_work(super::Deferred::PtyInput(pty));
        w.call(
            p,
            &Call::Write {
                fd: 0,
                data: b"b".to_vec(),
            },
        )
        .unwrap();
        let queues = |w: &World| {
            let p = w.pty(pty);
            let s = |q: &std::collections::VecDeque<u8>| {
                String::from_utf8(q.iter().copied().collect()).unwrap()
            };
            (s(&p.input), s(&p.to_master), s(&p.output))
        };
        assert_eq!(queues(&w), ("b".into(), "a".into(), "".into()));
        let later: std::collections::BTreeSet<_> =
            w.later_states().unwrap().iter().map(queues).collect();
        let want = [
            ("", "ab", ""),
            ("b", "", "a"),
            ("", "b", "a"),
            ("", "", "ab"),
        ];
        let want = want
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
        assert_eq!(later, want);
    }
}
