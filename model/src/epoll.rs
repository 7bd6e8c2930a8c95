//! epoll instances: an interest list keyed by (descriptor number, file).
//!
//! A registration names the number it was added under *and* the file that
//! number named then (Linux `struct epoll_filefd`). Closing the number does not
//! remove it while the file lives on through another descriptor: it stays
//! under a number that may now be closed or name another file. Only the last
//! reference to the file going away removes it (`eventpoll_release`). A
//! registration holds no reference to its file.

use imbl::{OrdMap, Vector};

use crate::ids::FileId;
use crate::{Events, Fd};

/// Linux `EP_MAX_NESTS`: how deep epoll sets may be nested.
pub const EP_MAX_NESTS: usize = 4;

/// Linux `path_limits`: how many wakeup paths of each length a file may
/// have, counted from the length 1 up (a file watched directly by an epoll
/// that nothing watches: any number). Longer chains of nested epolls could
/// turn one wakeup into a storm, so `EPOLL_CTL_ADD` refuses a link that
/// would pass a limit (`EINVAL`).
pub const PATH_LIMITS: [usize; EP_MAX_NESTS + 1] = [usize::MAX, 500, 100, 50, 10];

/// A registration's key: the number it was added under, and the file.
pub type Key = (Fd, FileId);

/// `EP_PRIVATE_BITS`: what is left of a registration's events once
/// `EPOLLONESHOT` has fired. A registration with nothing else is disabled
/// until `EPOLL_CTL_MOD` arms it again.
pub const PRIVATE: Events =
    Events::from_bits(Events::ONESHOT.bits() | Events::ET.bits() | Events::EXCLUSIVE.bits());

/// Whether `EPOLLONESHOT` disabled a registration with these events: it
/// keeps only the private bits, which an armed one never does (Linux adds
/// `EPOLLERR|EPOLLHUP` at `ADD` and `MOD`).
pub fn disabled(events: Events) -> bool {
    events.and(PRIVATE.not()).is_empty()
}

#[derive(Debug, Clone, Default)]
pub struct Epoll {
    /// The registrations and their events as Linux keeps them
    /// (`EPOLLERR|EPOLLHUP` added by `ADD` and `MOD`, and dropped with the
    /// rest when `EPOLLONESHOT` fires; see [`PRIVATE`]).
    pub interest: OrdMap<(Fd, FileId), Events>,
    /// The ready list (`rdllist`): registrations that were woken, in the
    /// order they were, not yet found not ready.
    pub ready: Vector<Key>,
    /// While the ready list is being scanned: the part taken off it, and
    /// the registrations woken meanwhile (Linux's `txlist` and `ovflist`).
    pub scan: Option<Scan>,
}

/// A scan of the ready list in progress (`ep_start_scan` to
/// `ep_done_scan`).
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// What was on the ready list and has not been looked at yet.
    pub txlist: Vector<Key>,
    /// Registrations woken during the scan, oldest first.
    pub overflow: Vec<Key>,
}

impl Epoll {
    /// Whether `key` is on the ready list, or on the part a scan took off
    /// it (`ep_is_linked`).
    pub fn linked(&self, key: Key) -> bool {
        self.ready.contains(&key) || self.scan.as_ref().is_some_and(|s| s.txlist.contains(&key))
    }

    /// Puts `key` at the tail of the ready list unless it is linked;
    /// returns whether it was not.
    pub fn link(&mut self, key: Key) -> bool {
        if self.linked(key) {
            return false;
        }
        self.ready.push_back(key);
        true
    }

    /// The wake-up callback's own part (`ep_poll_callback`): a registration
    /// woken with `key` events (empty: any) joins the ready list, or the
    /// overflow list while a scan runs. Returns whether the wake-up got
    /// through: then Linux wakes whoever watches this epoll too.
    pub fn callback(&mut self, key: Key, pollflags: Events) -> bool {
        let Some(&events) = self.interest.get(&key) else {
            return false;
        };
        // Disabled by EPOLLONESHOT, or not what the registration asked for.
        if disabled(events) || (!pollflags.is_empty() && !pollflags.intersects(events)) {
            return false;
        }
        match &mut self.scan {
            Some(s) => {
                if !s.overflow.contains(&key) {
                    s.overflow.push(key);
                }
            }
            None => {
                self.link(key);
            }
        }
        true
    }

    /// `ep_start_scan`: takes the ready list for a scan.
    pub fn start_scan(&mut self) {
        debug_assert!(self.scan.is_none(), "one scan at a time");
        self.scan = Some(Scan {
            txlist: std::mem::take(&mut self.ready),
            overflow: Vec::new(),
        });
    }

    /// The next registration the scan looks at, unlinked from the list
    /// (`list_del_init`).
    pub fn scan_next(&mut self) -> Option<Key> {
        self.scan.as_mut()?.txlist.pop_front()
    }

    /// Puts `key` back at the head of what the scan has not looked at (a
    /// scan that stops at a ready registration leaves it linked).
    pub fn scan_keep(&mut self, key: Key) {
        if let Some(s) = &mut self.scan {
            s.txlist.push_front(key);
        }
    }

    /// `ep_done_scan`: the ready list becomes what the scan did not look
    /// at, then what was woken during the scan and is not linked, oldest
    /// first, then what the scan put back (level-triggered registrations
    /// it reported).
    pub fn done_scan(&mut self) {
        let Some(s) = self.scan.take() else {
            return;
        };
        let mut ready = s.txlist;
        for k in s.overflow {
            if self.interest.contains_key(&k) && !ready.contains(&k) && !self.ready.contains(&k) {
                ready.push_back(k);
            }
        }
        ready.append(std::mem::take(&mut self.ready));
        self.ready = ready;
    }

    /// Removes registration `key` and unlinks it (`ep_remove`).
    pub fn remove(&mut self, key: Key) -> Option<Events> {
        self.ready.retain(|k| *k != key);
        if let Some(s) = &mut self.scan {
            s.txlist.retain(|k| *k != key);
            s.overflow.retain(|k| *k != key);
        }
        self.interest.remove(&key)
    }

    /// The registered epoll files of this set (the edges of the nesting graph).
    pub fn nested(&self) -> impl Iterator<Item = FileId> + '_ {
        self.interest.keys().map(|&(_, f)| f)
    }
}
