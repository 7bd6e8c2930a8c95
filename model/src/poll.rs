//! Readiness and wake-ups: what `poll` says of each kind of file, how a
//! wake-up reaches the epoll instances that watch an object, and epoll's
//! ready list (`ep_poll_callback`, `ep_item_poll`, `ep_send_events`).
//!
//! An epoll instance does not look at every file it watches when asked:
//! it keeps a *ready list* of registrations that were woken since, in the
//! order they were woken, and `epoll_wait` polls only those. A registration
//! found not ready leaves the list; one reported stays on it (at the tail)
//! unless it is edge-triggered (`EPOLLET`) or fires once (`EPOLLONESHOT`,
//! which also disables it until `EPOLL_CTL_MOD`). So what `epoll_wait`
//! reports, and in which order, depends on which wake-ups each call made;
//! the objects say so where they change ([`crate::waitq`]).
//!
//! Wake-ups logged by objects below the world are delivered, in order,
//! before anything reads or changes an epoll instance and at the end of
//! every call ([`World::flush_wakes`]); a wake-up made here is delivered at
//! once, after the log.
//!
//! Floor: above the world and the objects; below the file(9) layer, whose
//! last close removes registrations and wakes a pipe's other end.

use crate::epoll::{Epoll, Key, PRIVATE};
use crate::file::FileKind;
use crate::flags::Events;
use crate::ids::{FileId, PtyId};
use crate::pipe::PipeEnd;
use crate::pty::Side;
use crate::waitq::{Queue, Waiter, Wake};
use crate::world::World;

/// Linux `EP_MAX_EVENTS`: the most events one `epoll_wait` may ask for
/// (`INT_MAX / sizeof(struct epoll_event)`).
pub const EP_MAX_EVENTS: i32 = i32::MAX / 12;

impl World {
    /// Delivers the wake-ups the objects logged, oldest first.
    pub(crate) fn flush_wakes(&mut self) {
        for w in std::mem::take(&mut self.socks.wakes) {
            self.deliver(w);
        }
    }

    /// Wakes `queue` with `key` (empty: any event), after what the objects
    /// logged before.
    pub(crate) fn wake(&mut self, queue: Queue, key: Events) {
        self.flush_wakes();
        self.deliver(Wake { queue, key });
    }

    /// `__wake_up_common`: every entry, from the head.
    fn deliver(&mut self, w: Wake) {
        for waiter in self.waiters.waiters(w.queue) {
            let Some(FileKind::Epoll(e)) = self.files.get_mut(waiter.ep.0).map(|f| &mut f.kind)
            else {
                continue;
            };
            // ep_poll_callback; a wake-up that got through wakes whoever
            // watches this epoll in turn (ep_poll_safewake).
            if e.callback(waiter.key, w.key) && self.waiters.active(Queue::Epoll(waiter.ep)) {
                self.deliver(Wake {
                    queue: Queue::Epoll(waiter.ep),
                    key: Events::IN,
                });
            }
        }
    }

    /// The wait queues file `f`'s `poll` waits on.
    pub(crate) fn poll_queues(&self, f: FileId) -> Vec<Queue> {
        match &self.file(f).kind {
            FileKind::Larval | FileKind::Vnode(_) => Vec::new(),
            &FileKind::Pipe(p, PipeEnd::Read) => vec![Queue::PipeRead(p)],
            &FileKind::Pipe(p, PipeEnd::Write) => vec![Queue::PipeWrite(p)],
            &FileKind::Socket(s) => vec![Queue::Sock(s)],
            FileKind::Eventfd(_) => vec![Queue::Eventfd(f)],
            FileKind::Epoll(_) => vec![Queue::Epoll(f)],
            // n_tty_poll waits on both. (A slave hung up before the
            // registration waits on none; nothing wakes it any more, so
            // the difference cannot show.)
            &FileKind::PtyMaster(p) => vec![
                Queue::TtyRead(p, Side::Master),
                Queue::TtyWrite(p, Side::Master),
            ],
            &FileKind::PtySlave(p) => vec![
                Queue::TtyRead(p, Side::Slave),
                Queue::TtyWrite(p, Side::Slave),
            ],
        }
    }

    /// What file `f`'s `poll` says, among the events the language names,
    /// for a registration that asked for `requested`.
    fn poll_file(&mut self, f: FileId, requested: Events) -> Events {
        let on = |c: bool, e: Events| if c { e } else { Events::default() };
        match &self.file(f).kind {
            FileKind::Larval | FileKind::Vnode(_) => Events::default(),
            &FileKind::Pipe(p, PipeEnd::Read) => {
                let pipe = self.pipe(p);
                on(!pipe.is_empty(), Events::IN) | on(!pipe.writer, Events::HUP)
            }
            &FileKind::Pipe(p, PipeEnd::Write) => {
                let pipe = self.pipe(p);
                on(!pipe.is_full(), Events::OUT) | on(!pipe.reader, Events::ERR)
            }
            &FileKind::Socket(s) => self.socks.poll(s, requested),
            FileKind::Eventfd(e) => {
                on(e.count > 0, Events::IN) | on(e.count < u64::MAX - 1, Events::OUT)
            }
            &FileKind::PtyMaster(p) => {
                self.pty_wait_for_input(p, Side::Master);
                let pty = self.pty(p);
                // The slave's input buffer always has room for what the
                // language writes.
                on(!pty.output.is_empty(), Events::IN)
                    | Events::OUT
                    | on(pty.other_closed, Events::HUP)
            }
            &FileKind::PtySlave(p) => {
                // hung_up_tty_poll.
                if self.pty(p).hung_up() {
                    return Events::IN | Events::OUT | Events::ERR | Events::HUP;
                }
                self.pty_wait_for_input(p, Side::Slave);
                on(self.pty(p).complete > 0, Events::IN) | Events::OUT
            }
            FileKind::Epoll(_) => self.ep_eventpoll_poll(f),
        }
    }

    /// `tty_buffer_flush_work`, as `n_tty_read` and `n_tty_poll` call it:
    /// when the terminal at `side` of pty `p` has nothing to read, it
    /// waits for the bytes on their way to it (its own hop; a hung-up
    /// slave reads nothing).
    pub(crate) fn pty_wait_for_input(&mut self, p: PtyId, side: Side) {
        let pty = self.pty(p);
        match side {
            Side::Master if pty.output.is_empty() => {
                self.pty_flush_to_master(p);
            }
            Side::Slave if pty.complete == 0 && !pty.hung_up() => self.pty_receive_input(p),
            _ => {}
        }
    }

    /// Hop 1 of pty `p`: the slave's line discipline takes what the master
    /// wrote; a completed line wakes the slave's readers
    /// (`n_tty_receive_char_canon`).
    pub(crate) fn pty_receive_input(&mut self, p: PtyId) {
        if self.pty_mut(p).receive_input() {
            self.wake(Queue::TtyRead(p, Side::Slave), Events::IN);
        }
    }

    /// Hop 2 of pty `p`, if anything is on its way to the master: it reaches
    /// the master's read buffer, which wakes the readers
    /// (`n_tty_receive_buf`). Returns whether anything came.
    pub(crate) fn pty_flush_to_master(&mut self, p: PtyId) -> bool {
        if !self.pty_mut(p).flush_to_master() {
            return false;
        }
        self.wake(Queue::TtyRead(p, Side::Master), Events::IN);
        true
    }

    pub(crate) fn epoll(&self, ep: FileId) -> &Epoll {
        match &self.file(ep).kind {
            FileKind::Epoll(e) => e,
            _ => unreachable!("file#{} is not an epoll", self.file(ep).serial),
        }
    }

    fn epoll_mut(&mut self, ep: FileId) -> &mut Epoll {
        match &mut self.file_mut(ep).kind {
            FileKind::Epoll(e) => e,
            _ => unreachable!("not an epoll"),
        }
    }

    /// `ep_item_poll`: what registration `key` of `ep` is ready for now.
    fn ep_item_poll(&mut self, ep: FileId, key: Key) -> Events {
        // epi_fget: a file whose last reference is gone, waiting for
        // delayed_fput, is not polled.
        if self.file(key.1).count() == 0 {
            return Events::default();
        }
        let events = self
            .epoll(ep)
            .interest
            .get(&key)
            .copied()
            .unwrap_or_default();
        self.poll_file(key.1, events).and(events)
    }

    /// `__ep_eventpoll_poll`: an epoll instance is readable when something
    /// on its ready list is ready. Registrations found not ready on the way
    /// leave the list.
    fn ep_eventpoll_poll(&mut self, ep: FileId) -> Events {
        self.epoll_mut(ep).start_scan();
        let mut ready = Events::default();
        while let Some(key) = self.epoll_mut(ep).scan_next() {
            if !self.ep_item_poll(ep, key).is_empty() {
                self.epoll_mut(ep).scan_keep(key);
                ready = Events::IN;
                break;
            }
        }
        self.epoll_mut(ep).done_scan();
        ready
    }

    /// Puts a ready registration on the ready list, and wakes whoever
    /// watches the epoll if it was not there (the end of `ep_insert`, once
    /// the wakeup paths are checked, and of `ep_modify`).
    pub(crate) fn ep_link_if_ready(&mut self, ep: FileId, key: Key) {
        if !self.ep_item_poll(ep, key).is_empty()
            && self.epoll_mut(ep).link(key)
            && self.waiters.active(Queue::Epoll(ep))
        {
            self.wake(Queue::Epoll(ep), Events::IN);
        }
    }

    /// `ep_insert` after the checks: registration `key` with `events`
    /// waits on its file's queues and joins the ready list if ready.
    pub(crate) fn ep_insert(&mut self, ep: FileId, key: Key, events: Events) {
        self.flush_wakes();
        self.epoll_mut(ep).interest.insert(key, events);
        self.file_mut(key.1).watched_by.push(ep);
        let exclusive = events.contains(Events::EXCLUSIVE);
        for q in self.poll_queues(key.1) {
            self.waiters.add(q, Waiter { ep, key }, exclusive);
        }
    }

    /// `ep_modify`: new events for registration `key`, which joins the
    /// ready list if ready for them.
    pub(crate) fn ep_modify(&mut self, ep: FileId, key: Key, events: Events) {
        self.flush_wakes();
        self.epoll_mut(ep).interest.insert(key, events);
        self.ep_link_if_ready(ep, key);
    }

    /// `ep_remove`: registration `key` of `ep` leaves its queues and the
    /// ready list.
    pub(crate) fn ep_remove(&mut self, ep: FileId, key: Key) -> bool {
        self.flush_wakes();
        self.waiters.remove(Waiter { ep, key });
        self.file_mut(key.1).unwatch(ep);
        self.epoll_mut(ep).remove(key).is_some()
    }

    /// `eventpoll_release` of file `f`, freed: its registrations in the
    /// epolls `watched_by` names leave their queues and ready lists.
    pub(crate) fn eventpoll_release(&mut self, f: FileId, watched_by: &[FileId]) {
        self.flush_wakes();
        for &ep in watched_by {
            let keys: Vec<Key> = match self.files.get(ep.0).map(|x| &x.kind) {
                Some(FileKind::Epoll(e)) => {
                    e.interest.keys().filter(|k| k.1 == f).copied().collect()
                }
                _ => Vec::new(),
            };
            for key in keys {
                self.waiters.remove(Waiter { ep, key });
                self.epoll_mut(ep).remove(key);
            }
        }
    }

    /// `ep_free`: the registrations of epoll `ep`, freed, leave the queues
    /// of the files they watch.
    pub(crate) fn ep_free(&mut self, ep: FileId, e: &Epoll) {
        for &key in e.interest.keys() {
            self.waiters.remove(Waiter { ep, key });
            if let Some(t) = self.files.get_mut(key.1 .0) {
                t.unwatch(ep);
            }
        }
    }

    /// `ep_send_events` for `epoll_wait` with a timeout of 0 on epoll file
    /// `ep`: at most `max` ready registrations, each as the number it was
    /// registered under and the events it is ready for.
    pub(crate) fn ep_send_events(&mut self, ep: FileId, max: usize) -> Vec<(Key, Events)> {
        self.flush_wakes();
        let mut out = Vec::new();
        if self.epoll(ep).ready.is_empty() {
            return out;
        }
        self.epoll_mut(ep).start_scan();
        while out.len() < max {
            let Some(key) = self.epoll_mut(ep).scan_next() else {
                break;
            };
            let revents = self.ep_item_poll(ep, key);
            if revents.is_empty() {
                continue;
            }
            out.push((key, revents.and(Events::REPORTED)));
            let e = self.epoll_mut(ep);
            let events = e.interest[&key];
            if events.contains(Events::ONESHOT) {
                e.interest.insert(key, events.and(PRIVATE));
            } else if !events.contains(Events::ET) {
                // Level-triggered: looked at again next time.
                e.ready.push_back(key);
            }
        }
        self.epoll_mut(ep).done_scan();
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::call::{Call, EpollOp, Ret};
    use crate::flags::Events;
    use crate::world::World;

    fn run(w: &mut World, p: crate::Pid, c: Call) -> Ret {
        w.call(p, &c).unwrap_or_else(|e| panic!("{c:?}: {e:?}"))
    }

    fn add(epfd: i32, fd: i32, events: Events) -> Call {
        Call::EpollCtl {
            epfd,
            op: EpollOp::Add,
            fd,
            events,
        }
    }

    fn wait(epfd: i32, maxevents: i32) -> Call {
        Call::EpollWait { epfd, maxevents }
    }

    fn ready(v: &[(i64, Events)]) -> Ret {
        Ret::Ready(v.to_vec())
    }

    fn pipe() -> Call {
        Call::Pipe {
            cloexec: false,
            nonblock: false,
        }
    }

    fn write(fd: i32) -> Call {
        Call::Write {
            fd,
            data: b"x".to_vec(),
        }
    }

    /// As Linux 6.18 answered: wake order, level-triggered registrations
    /// back at the tail, and what `maxevents` left out keeps the head.
    #[test]
    fn the_ready_list_keeps_wake_order() {
        let mut w = World::new();
        let p = w.spawn("p").unwrap();
        run(&mut w, p, Call::EpollCreate { cloexec: false });
        for _ in 0..3 {
            run(&mut w, p, pipe()); // 1 2, 3 4, 5 6
        }
        for fd in [1, 3, 5] {
            run(&mut w, p, add(0, fd, Events::IN));
        }
        assert_eq!(run(&mut w, p, wait(0, 8)), ready(&[]));
        for fd in [4, 2, 6] {
            run(&mut w, p, write(fd));
        }
        let all = [(3, Events::IN), (1, Events::IN), (5, Events::IN)];
        assert_eq!(run(&mut w, p, wait(0, 8)), ready(&all));
        assert_eq!(run(&mut w, p, wait(0, 8)), ready(&all));
        assert_eq!(run(&mut w, p, wait(0, 1)), ready(&all[..1]));
        assert_eq!(run(&mut w, p, wait(0, 8)), ready(&[all[1], all[2], all[0]]));
    }

    /// EPOLLONESHOT reports once and leaves only its private bits; MOD
    /// arms it again. EPOLLET reports once per wake-up.
    #[test]
    fn oneshot_disables_and_edge_triggered_needs_a_wake_up() {
        let mut w = World::new();
        let p = w.spawn("p").unwrap();
        run(&mut w, p, Call::EpollCreate { cloexec: false });
        run(&mut w, p, pipe()); // 1 2
        run(&mut w, p, pipe()); // 3 4
        run(&mut w, p, add(0, 1, Events::IN | Events::ONESHOT));
        run(&mut w, p, add(0, 3, Events::IN | Events::ET));
        run(&mut w, p, write(2));
        run(&mut w, p, write(4));
        let both = [(1, Events::IN), (3, Events::IN)];
        assert_eq!(run(&mut w, p, wait(0, 8)), ready(&both));
        assert_eq!(run(&mut w, p, wait(0, 8)), ready(&[]));
        let t = w.topology();
        let ep = t.files.iter().find_map(|f| f.targets.as_ref()).unwrap();
        assert_eq!(ep[0].events, Events::ONESHOT, "disabled: {ep:?}");
        // Another write wakes the edge-triggered one only.
        run(&mut w, p, write(2));
        run(&mut w, p, write(4));
        assert_eq!(run(&mut w, p, wait(0, 8)), ready(&both[1..]));
        let re_arm = Call::EpollCtl {
            epfd: 0,
            op: EpollOp::Mod,
            fd: 1,
            events: Events::IN,
        };
        run(&mut w, p, re_arm);
        assert_eq!(run(&mut w, p, wait(0, 8)), ready(&both[..1]));
        crate::invariants::check_all(&w).unwrap();
    }

    /// The collector drops the last reference from a work queue, and the
    /// file is torn down a moment later (delayed_fput): in between it is
    /// still registered, and epoll_wait skips it.
    #[test]
    fn a_file_the_collector_freed_waits_for_delayed_fput() {
        use crate::deferred::Deferred;
        use crate::SockFlags;
        let mut w = World::new();
        w.set_deferred(true);
        let p = w.spawn("p").unwrap();
        let pair = Call::Socketpair {
            ty: crate::SockType::Stream,
            flags: SockFlags::default(),
        };
        run(&mut w, p, pair); // 0 1
        run(&mut w, p, Call::EpollCreate { cloexec: false }); // 2
        run(&mut w, p, add(2, 1, Events::IN | Events::OUT));
        let send = Call::Sendfds {
            sock: 0,
            fds: vec![1],
        };
        run(&mut w, p, send);
        run(&mut w, p, Call::Close { fd: 1 });
        run(&mut w, p, Call::Close { fd: 0 });
        w.run_work(Deferred::Gc);
        w.run_work(Deferred::GcDrop);
        assert_eq!(w.pending_work(), vec![Deferred::Fput]);
        let watched = |w: &World| {
            let t = w.topology();
            t.files
                .iter()
                .find_map(|f| f.targets.clone())
                .unwrap()
                .len()
        };
        assert_eq!(watched(&w), 1, "still registered");
        assert_eq!(run(&mut w, p, wait(2, 8)), ready(&[]), "but skipped");
        w.run_work(Deferred::Fput);
        assert_eq!(watched(&w), 0);
        assert!(w.pending_work().is_empty());
        crate::invariants::check_all(&w).unwrap();
    }

    /// One file under two numbers: the newest registration is woken first;
    /// an exclusive one after every ordinary one. An epoll watching the
    /// epoll is readable, and asking it drops what is not ready.
    #[test]
    fn wait_queue_order_and_nesting() {
        let mut w = World::new();
        let p = w.spawn("p").unwrap();
        run(&mut w, p, Call::EpollCreate { cloexec: false }); // 0
        run(&mut w, p, pipe()); // 1 2
        run(&mut w, p, Call::Dup { fd: 1 }); // 3
        run(&mut w, p, Call::Dup { fd: 1 }); // 4
        run(&mut w, p, add(0, 4, Events::IN | Events::EXCLUSIVE));
        run(&mut w, p, add(0, 1, Events::IN));
        run(&mut w, p, add(0, 3, Events::IN));
        run(&mut w, p, Call::EpollCreate { cloexec: false }); // 5
        run(&mut w, p, add(5, 0, Events::IN));
        assert_eq!(run(&mut w, p, wait(5, 8)), ready(&[]));
        run(&mut w, p, write(2));
        assert_eq!(run(&mut w, p, wait(5, 8)), ready(&[(0, Events::IN)]));
        let order = [(3, Events::IN), (1, Events::IN), (4, Events::IN)];
        assert_eq!(run(&mut w, p, wait(0, 8)), ready(&order));
        run(&mut w, p, Call::Read { fd: 1, len: 1 });
        assert_eq!(run(&mut w, p, wait(5, 8)), ready(&[]));
        assert_eq!(run(&mut w, p, wait(0, 8)), ready(&[]));
        crate::invariants::check_all(&w).unwrap();
    }
}
