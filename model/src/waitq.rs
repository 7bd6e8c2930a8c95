//! Wait queues (Linux `wait_queue_head_t`): how an object tells the epoll
//! instances watching it that something happened.
//!
//! A file's `poll` names the queues it may be woken on (a pipe's read end
//! waits on the pipe's `rd_wait`, a socket on its `sk_wq`, a pty master or
//! slave on its terminal's read and write queues), and `EPOLL_CTL_ADD` puts one
//! entry per queue on them. When the object changes it wakes a queue with
//! a key, the events that may have happened (or none: "anything"), and
//! each entry's callback decides whether its registration becomes ready.
//!
//! Order matters, because it becomes the order of epoll's ready list:
//! Linux puts an ordinary entry at the head of its queue and an
//! `EPOLLEXCLUSIVE` one at the tail, and wakes from the head. So a file
//! registered twice in one epoll instance shows up newest registration
//! first.
//!
//! Objects below the world cannot reach the epoll instances, so they log
//! their wakes ([`Wakes`]) and the world delivers the log in order before
//! anything looks at an epoll instance (see `poll`).
//!
//! Floor: a kernel object; knows only the names of others.

use imbl::{OrdMap, Vector};

use crate::flags::Events;
use crate::ids::{FileId, PipeId, PtyId, SockId};
use crate::pty::Side;
use crate::Fd;

/// One wait queue of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Queue {
    /// `pipe->rd_wait`: where the read end waits.
    PipeRead(PipeId),
    /// `pipe->wr_wait`: where the write end waits.
    PipeWrite(PipeId),
    /// A socket's `sk_wq`: readable, writable and state changes alike.
    Sock(SockId),
    /// An eventfd's `wqh` (the eventfd's file).
    Eventfd(FileId),
    /// An epoll instance's `poll_wait`, where the epoll instances that
    /// watch it wait (the epoll's file).
    Epoll(FileId),
    /// A terminal's `read_wait`: the master's or the slave's.
    TtyRead(PtyId, Side),
    /// A terminal's `write_wait`.
    TtyWrite(PtyId, Side),
}

/// An epoll registration waiting on a queue: the epoll's file and the
/// registration's key there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Waiter {
    pub ep: FileId,
    pub key: (Fd, FileId),
}

/// A wake-up of `queue` with `key`; an empty key wakes every entry
/// whatever it waits for (`wake_up_interruptible_all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wake {
    pub queue: Queue,
    pub key: Events,
}

/// A log of wakes, delivered in order by the world.
pub type Wakes = Vec<Wake>;

/// Every queue that has entries, with its entries in wake-up order.
#[derive(Debug, Clone, Default)]
pub struct WaitQueues {
    queues: OrdMap<Queue, Vector<Waiter>>,
}

impl WaitQueues {
    /// Adds `w` to `q`: at the head, or at the tail when `exclusive`
    /// (`add_wait_queue`, `add_wait_queue_exclusive`).
    pub fn add(&mut self, q: Queue, w: Waiter, exclusive: bool) {
        let list = self.queues.entry(q).or_default();
        if exclusive {
            list.push_back(w);
        } else {
            list.push_front(w);
        }
    }

    /// Removes every entry of registration `w`, from whatever queue.
    pub fn remove(&mut self, w: Waiter) {
        let keys: Vec<Queue> = self
            .queues
            .iter()
            .filter(|(_, l)| l.contains(&w))
            .map(|(q, _)| *q)
            .collect();
        for q in keys {
            let list = self.queues.get_mut(&q).expect("listed");
            list.retain(|x| *x != w);
            if list.is_empty() {
                self.queues.remove(&q);
            }
        }
    }

    /// The entries of `q`, in wake-up order.
    pub fn waiters(&self, q: Queue) -> Vec<Waiter> {
        self.queues
            .get(&q)
            .map(|l| l.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Whether anything waits on `q` (`waitqueue_active`).
    pub fn active(&self, q: Queue) -> bool {
        self.queues.contains_key(&q)
    }

    /// Every entry, queue by queue (for the invariants).
    pub fn iter(&self) -> impl Iterator<Item = (Queue, Waiter)> + '_ {
        self.queues
            .iter()
            .flat_map(|(q, l)| l.iter().map(move |w| (*q, *w)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(fd: u32) -> Waiter {
        Waiter {
            ep: FileId(0),
            key: (Fd::new(fd), FileId(1)),
        }
    }

    #[test]
    fn newest_first_and_exclusive_last() {
        let mut qs = WaitQueues::default();
        let q = Queue::Eventfd(FileId(1));
        qs.add(q, w(3), false);
        qs.add(q, w(4), true);
        qs.add(q, w(5), false);
        qs.add(q, w(6), true);
        assert_eq!(qs.waiters(q), vec![w(5), w(3), w(4), w(6)]);
        qs.remove(w(3));
        qs.remove(w(4));
        qs.remove(w(5));
        assert!(qs.active(q));
        qs.remove(w(6));
        assert!(!qs.active(q), "an empty queue is gone");
    }
}
