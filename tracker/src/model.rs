//! A pure model of an fd tracker (LTTng's `src/common/fd-tracker`): the
//! reference that the real tracker, [`crate::FdTracker`], is checked against.
//!
//! A tracker keeps at most `capacity` descriptors open. Its suspendable
//! handles may lose their descriptor whenever they are not in use and get it
//! back, transparently, when they are used again; unsuspendable descriptors
//! (sockets, pipes) are only counted. The model keeps what the real tracker
//! keeps (which handles hold a descriptor, which are in use, their recency,
//! the unsuspendable descriptors, the unlinked-file pool) and what the file
//! system would (names, bytes, offsets). It makes no system call.
//!
//! The policy, stated once; the real tracker follows it:
//! - **Room.** Room for `n` more descriptors is made by suspending the
//!   `active + unsuspendable + n - capacity` least recently used active
//!   handles that are not in use and can be restored. All or nothing: when
//!   fewer are suspendable, nothing is suspended and the call fails with
//!   [`ErrorKind::NoRoom`] (`EMFILE`).
//! - **Restorable.** A handle can be restored if a name leads to its file.
//!   Renamed behind the tracker's back (a log rotated), the file is
//!   followed to its new name when a handle of it is suspended; deleted or
//!   replaced behind its back, it has no name, and its active handles are
//!   never suspended (they keep their descriptors until closed).
//! - **Open.** Makes room for one descriptor first, then opens (so a failed
//!   open may still have suspended a handle, as a full Linux table answers
//!   `EMFILE` before it looks at the path). The new handle is the most
//!   recently used.
//! - **Get.** Every get is a use, and makes the handle the most recently
//!   used. A get on a suspended handle is a miss: it makes room and restores
//!   the handle. A miss that fails (no room, file gone or replaced) is an
//!   error. Restoring reopens the same name with the original flags minus
//!   `O_CREAT`, `O_TRUNC` and `O_EXCL`, which must not be replayed, at the
//!   saved offset, and only if the name still leads to the same inode.
//! - **Unsuspendable.** Opening makes room for all of them first, then runs
//!   the caller's callback, then checks what it returned (count, duplicates,
//!   descriptors already tracked); any failure tracks nothing. Closing checks
//!   that every descriptor is tracked before it runs the callback; a callback
//!   failure untracks nothing.
//! - **Unlink.** Moves the file into the pool under the next number, so the
//!   name is free at once while handles (even suspended ones) keep the file.
//!   The pooled file goes when the last handle to it closes; the pool
//!   directory exists while it holds a file. Unlinking a pooled file again
//!   is [`ErrorKind::AlreadyUnlinked`] (`ENOENT`).
//!
//! ```
//! use fdlab_tracker::model::{Access, Tracker};
//!
//! let mut t = Tracker::new(1);
//! let a = t.open("a", Access::CREATE_RW).unwrap();
//! let b = t.open("b", Access::CREATE_RW).unwrap(); // suspends a
//! t.get(a).unwrap(); // a miss: suspends b, restores a
//! t.write(a, b"hi").unwrap();
//! t.put(a).unwrap();
//! let s = t.stats();
//! assert_eq!((s.uses, s.misses, s.active, s.suspended), (1, 1, 1, 1));
//! t.check_invariants().unwrap();
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::report::{ErrorKind, HandleState, Stats};
use fdlab_model::violation::{fail, Violation};

/// A suspendable handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct HandleId(pub u64);

/// An unsuspendable descriptor (the model does not know its number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct UnsuspendableId(pub u64);

/// A file (an inode): it outlives its name while handles hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InodeId(u64);

/// How a handle is opened: `O_RDONLY`/`O_WRONLY`/`O_RDWR`, `O_APPEND`,
/// `O_CREAT`, `O_TRUNC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Access {
    pub read: bool,
    pub write: bool,
    pub append: bool,
    pub create: bool,
    pub trunc: bool,
}

impl Access {
    /// `O_RDWR | O_CREAT`, as LTTng's tests open their files.
    pub const CREATE_RW: Access = Access {
        read: true,
        write: true,
        append: false,
        create: true,
        trunc: false,
    };
    /// `O_RDONLY`.
    pub const READ: Access = Access {
        read: true,
        write: false,
        append: false,
        create: false,
        trunc: false,
    };
}

/// What the caller's open callback does, for [`Tracker::open_unsuspendable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callback {
    /// Returns as many fresh descriptors as asked for.
    Fresh,
    /// Returns fresh descriptors, the last replaced by this tracked one.
    Duplicate(UnsuspendableId),
    /// Returns this many fresh descriptors instead.
    Count(usize),
    /// Fails.
    Fails,
}

/// A bug to plant in the model, so that the state-machine test can show it
/// catches a model and a tracker that disagree. Never set otherwise.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// Suspends the most recently used handle instead of the least.
    EvictMostRecent,
    /// Restores at offset 0.
    ForgetOffset,
    /// Replays `O_TRUNC` when it restores.
    ReplayTrunc,
}

/// Where a file can be opened from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    /// By its name (which may since lead to another inode).
    Named(String),
    /// In the unlinked-file pool, under this number.
    Pooled(u64),
}

#[derive(Debug, Clone)]
struct Inode {
    data: Vec<u8>,
    location: Location,
    /// Handles to it.
    refs: usize,
}

#[derive(Debug, Clone)]
struct Handle {
    inode: InodeId,
    access: Access,
    /// The file position, kept whether or not the handle is active.
    offset: u64,
    active: bool,
    users: u32,
    last_used: u64,
}

/// The model of a tracker and of the directory its files live in.
#[derive(Debug, Clone)]
pub struct Tracker {
    capacity: usize,
    clock: u64,
    next: u64,
    handles: BTreeMap<HandleId, Handle>,
    inodes: BTreeMap<InodeId, Inode>,
    /// The directory: name -> inode.
    names: BTreeMap<String, InodeId>,
    unsuspendable: BTreeSet<UnsuspendableId>,
    pool_next: u64,
    uses: u64,
    misses: u64,
    errors: u64,
    bug: Option<PlantedBug>,
}

impl Tracker {
    pub fn new(capacity: usize) -> Tracker {
        Tracker {
            capacity,
            clock: 0,
            next: 0,
            handles: BTreeMap::new(),
            inodes: BTreeMap::new(),
            names: BTreeMap::new(),
            unsuspendable: BTreeSet::new(),
            pool_next: 0,
            uses: 0,
            misses: 0,
            errors: 0,
            bug: None,
        }
    }

    #[doc(hidden)]
    pub fn plant(&mut self, bug: PlantedBug) {
        self.bug = Some(bug);
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn fresh(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn touch(&mut self, h: HandleId) {
        self.clock += 1;
        let now = self.clock;
        if let Some(handle) = self.handles.get_mut(&h) {
            handle.last_used = now;
        }
    }

    fn active(&self) -> usize {
        self.handles.values().filter(|h| h.active).count()
    }

    pub fn stats(&self) -> Stats {
        let active = self.active();
        Stats {
            uses: self.uses,
            misses: self.misses,
            errors: self.errors,
            active,
            suspended: self.handles.len() - active,
            unsuspendable: self.unsuspendable.len(),
            capacity: self.capacity,
        }
    }

    /// Every live handle, in the order they were opened.
    pub fn handles(&self) -> Vec<HandleId> {
        self.handles.keys().copied().collect()
    }

    pub fn state(&self, h: HandleId) -> Option<HandleState> {
        self.handles.get(&h).map(|h| match h.active {
            true => HandleState::Active { users: h.users },
            false => HandleState::Suspended,
        })
    }

    pub fn access(&self, h: HandleId) -> Option<Access> {
        self.handles.get(&h).map(|h| h.access)
    }

    /// The tracked unsuspendable descriptors.
    pub fn unsuspendable(&self) -> Vec<UnsuspendableId> {
        self.unsuspendable.iter().copied().collect()
    }

    /// The directory's files and their bytes.
    pub fn named_files(&self) -> BTreeMap<String, Vec<u8>> {
        self.names
            .iter()
            .map(|(n, i)| (n.clone(), self.inodes[i].data.clone()))
            .collect()
    }

    /// The pool's files (by number) and their bytes; the pool directory
    /// exists exactly when this is not empty.
    pub fn pooled_files(&self) -> BTreeMap<u64, Vec<u8>> {
        self.inodes
            .values()
            .filter_map(|i| match i.location {
                Location::Pooled(n) => Some((n, i.data.clone())),
                Location::Named(_) => None,
            })
            .collect()
    }

    /// Makes room for `n` more descriptors (the policy's "Room").
    fn make_room(&mut self, n: usize) -> Result<(), ErrorKind> {
        let used = self.active() + self.unsuspendable.len();
        let need = (used + n).saturating_sub(self.capacity);
        if need == 0 {
            return Ok(());
        }
        let mut victims: Vec<(u64, HandleId)> = self
            .handles
            .iter()
            .filter(|(_, h)| h.active && h.users == 0)
            .map(|(&id, h)| (h.last_used, id))
            .collect();
        victims.sort();
        if self.bug == Some(PlantedBug::EvictMostRecent) {
            victims.reverse();
        }
        // In order, as the real tracker claims them: each looked at is
        // followed to its name now (if it was renamed), and those with no
        // name are passed over.
        let mut chosen = Vec::new();
        for (_, id) in victims {
            if chosen.len() == need {
                break;
            }
            let inode = self.handles[&id].inode;
            if let Some(location) = self.name_of(inode) {
                if let Some(i) = self.inodes.get_mut(&inode) {
                    i.location = location;
                }
                chosen.push(id);
            }
        }
        if chosen.len() < need {
            return Err(ErrorKind::NoRoom);
        }
        for id in chosen {
            if let Some(h) = self.handles.get_mut(&id) {
                h.active = false;
            }
        }
        Ok(())
    }

    /// Where `inode` can be reopened from now: its location if that still
    /// leads to it, else the name it was renamed to, else nowhere.
    fn name_of(&self, inode: InodeId) -> Option<Location> {
        let i = &self.inodes[&inode];
        if let Location::Named(n) = &i.location {
            if self.names.get(n) != Some(&inode) {
                return self
                    .names
                    .iter()
                    .find(|(_, &x)| x == inode)
                    .map(|(n, _)| Location::Named(n.clone()));
            }
        }
        Some(i.location.clone())
    }

    /// Whether the inode's location still leads to it.
    fn reachable(&self, inode: InodeId) -> Result<(), ErrorKind> {
        match &self.inodes[&inode].location {
            Location::Pooled(_) => Ok(()),
            Location::Named(n) => match self.names.get(n) {
                Some(&i) if i == inode => Ok(()),
                Some(_) => Err(ErrorKind::Replaced),
                None => Err(ErrorKind::NotFound),
            },
        }
    }

    /// Opens a suspendable handle on `name`.
    ///
    /// Errors: `NoRoom`, `NotFound` (no such file and no `create`),
    /// `Misuse` (neither read nor write).
    pub fn open(&mut self, name: &str, access: Access) -> Result<HandleId, ErrorKind> {
        if !access.read && !access.write {
            return Err(ErrorKind::Misuse);
        }
        self.make_room(1)?;
        let inode = match self.names.get(name) {
            Some(&i) => {
                if let Some(inode) = self.inodes.get_mut(&i).filter(|_| access.trunc) {
                    inode.data.clear();
                }
                i
            }
            None if access.create => {
                let i = InodeId(self.fresh());
                let location = Location::Named(name.to_string());
                let inode = Inode {
                    data: Vec::new(),
                    location,
                    refs: 0,
                };
                self.inodes.insert(i, inode);
                self.names.insert(name.to_string(), i);
                i
            }
            None => return Err(ErrorKind::NotFound),
        };
        if let Some(i) = self.inodes.get_mut(&inode) {
            i.refs += 1;
        }
        let id = HandleId(self.fresh());
        let handle = Handle {
            inode,
            access,
            offset: 0,
            active: true,
            users: 0,
            last_used: 0,
        };
        self.handles.insert(id, handle);
        self.touch(id);
        Ok(id)
    }

    /// `get_fd`: marks the handle in use and most recently used, restoring it
    /// first if it is suspended.
    ///
    /// Errors: `NoRoom`, `Replaced`, `NotFound` (counted as errors),
    /// `Misuse` (no such handle).
    pub fn get(&mut self, h: HandleId) -> Result<(), ErrorKind> {
        let handle = self.handles.get(&h).ok_or(ErrorKind::Misuse)?.clone();
        self.uses += 1;
        if !handle.active {
            self.misses += 1;
            if let Err(e) = self.make_room(1).and(self.reachable(handle.inode)) {
                self.errors += 1;
                return Err(e);
            }
            let bug = self.bug;
            let replay = bug == Some(PlantedBug::ReplayTrunc) && handle.access.trunc;
            if let Some(inode) = self.inodes.get_mut(&handle.inode).filter(|_| replay) {
                inode.data.clear();
            }
            if let Some(handle) = self.handles.get_mut(&h) {
                handle.active = true;
                if bug == Some(PlantedBug::ForgetOffset) {
                    handle.offset = 0;
                }
            }
        }
        if let Some(handle) = self.handles.get_mut(&h) {
            handle.users += 1;
        }
        self.touch(h);
        Ok(())
    }

    /// `put_fd`: the end of one use.
    ///
    /// Errors: `Misuse` (no such handle, or not in use).
    pub fn put(&mut self, h: HandleId) -> Result<(), ErrorKind> {
        match self.handles.get_mut(&h) {
            Some(handle) if handle.users > 0 => {
                handle.users -= 1;
                Ok(())
            }
            _ => Err(ErrorKind::Misuse),
        }
    }

    fn in_use(&mut self, h: HandleId) -> Result<&mut Handle, ErrorKind> {
        match self.handles.get_mut(&h) {
            Some(handle) if handle.users > 0 => Ok(handle),
            _ => Err(ErrorKind::Misuse),
        }
    }

    /// `read(2)` of at most `n` bytes through a handle in use.
    pub fn read(&mut self, h: HandleId, n: usize) -> Result<Vec<u8>, ErrorKind> {
        let handle = self.in_use(h)?;
        if !handle.access.read {
            return Err(ErrorKind::Misuse);
        }
        let (inode, offset) = (handle.inode, handle.offset);
        let data = &self.inodes[&inode].data;
        let start = usize::try_from(offset).map_or(data.len(), |o| o.min(data.len()));
        let end = (start + n).min(data.len());
        let bytes = data[start..end].to_vec();
        if let Some(handle) = self.handles.get_mut(&h) {
            handle.offset += bytes.len() as u64;
        }
        Ok(bytes)
    }

    /// `write(2)` through a handle in use: at its offset, or at the end for
    /// `O_APPEND`, filling a hole with zeros. Writing nothing changes
    /// nothing.
    pub fn write(&mut self, h: HandleId, bytes: &[u8]) -> Result<usize, ErrorKind> {
        let handle = self.in_use(h)?;
        if !handle.access.write {
            return Err(ErrorKind::Misuse);
        }
        if bytes.is_empty() {
            // Linux writes nothing and moves nothing, O_APPEND or not:
            // `new_sync_write` updates the position only for a positive count.
            return Ok(0);
        }
        let (inode, append, offset) = (handle.inode, handle.access.append, handle.offset);
        let data = &mut self.inodes.get_mut(&inode).ok_or(ErrorKind::Misuse)?.data;
        let start = if append {
            data.len()
        } else {
            usize::try_from(offset).map_err(|_| ErrorKind::Misuse)?
        };
        if data.len() < start + bytes.len() {
            data.resize(start + bytes.len(), 0);
        }
        data[start..start + bytes.len()].copy_from_slice(bytes);
        if let Some(handle) = self.handles.get_mut(&h) {
            handle.offset = (start + bytes.len()) as u64;
        }
        Ok(bytes.len())
    }

    /// Unlinks the handle's file into the pool.
    ///
    /// Errors: `AlreadyUnlinked`, `NotFound` or `Replaced` (the name no
    /// longer leads to the handle's file), `Misuse`.
    pub fn unlink(&mut self, h: HandleId) -> Result<(), ErrorKind> {
        let inode = self.handles.get(&h).ok_or(ErrorKind::Misuse)?.inode;
        let name = match &self.inodes[&inode].location {
            Location::Pooled(_) => return Err(ErrorKind::AlreadyUnlinked),
            Location::Named(n) => n.clone(),
        };
        self.reachable(inode)?;
        self.names.remove(&name);
        let number = self.pool_next;
        self.pool_next += 1;
        if let Some(i) = self.inodes.get_mut(&inode) {
            i.location = Location::Pooled(number);
        }
        Ok(())
    }

    /// Closes a handle that is not in use; the last handle to a pooled (or
    /// nameless) file deletes it.
    ///
    /// Errors: `Misuse` (no such handle, or in use).
    pub fn close(&mut self, h: HandleId) -> Result<(), ErrorKind> {
        match self.handles.get(&h) {
            Some(handle) if handle.users == 0 => {}
            _ => return Err(ErrorKind::Misuse),
        }
        let Some(handle) = self.handles.remove(&h) else {
            return Err(ErrorKind::Misuse);
        };
        let inode = handle.inode;
        // A file renamed behind our back is still a file of the directory.
        let named = self.name_of(inode);
        let Some(i) = self.inodes.get_mut(&inode) else {
            return Err(ErrorKind::Misuse);
        };
        i.refs -= 1;
        if i.refs == 0 {
            match named {
                Some(Location::Named(n)) => i.location = Location::Named(n),
                _ => {
                    self.inodes.remove(&inode);
                }
            }
        }
        Ok(())
    }

    /// Tracks `count` unsuspendable descriptors that `callback` opens.
    ///
    /// Errors: `NoRoom`, `Callback`, `Invalid` (wrong count),
    /// `AlreadyTracked`; nothing is tracked then, though handles suspended to
    /// make room stay suspended.
    pub fn open_unsuspendable(
        &mut self,
        count: usize,
        callback: Callback,
    ) -> Result<Vec<UnsuspendableId>, ErrorKind> {
        if count > self.capacity {
            return Err(ErrorKind::NoRoom);
        }
        self.make_room(count)?;
        match callback {
            Callback::Fails => return Err(ErrorKind::Callback),
            Callback::Count(n) if n != count => return Err(ErrorKind::Invalid),
            Callback::Duplicate(u) if count > 0 && self.unsuspendable.contains(&u) => {
                return Err(ErrorKind::AlreadyTracked)
            }
            Callback::Duplicate(_) => return Err(ErrorKind::Misuse),
            Callback::Fresh | Callback::Count(_) => {}
        }
        let ids: Vec<UnsuspendableId> = (0..count).map(|_| UnsuspendableId(self.fresh())).collect();
        self.unsuspendable.extend(ids.iter().copied());
        Ok(ids)
    }

    /// Untracks unsuspendable descriptors that the caller's callback closes;
    /// `unknown` adds a descriptor that was never tracked.
    ///
    /// Errors: `NotTracked` (before the callback runs), `Callback` (nothing
    /// is untracked).
    pub fn close_unsuspendable(
        &mut self,
        ids: &[UnsuspendableId],
        unknown: bool,
        callback_fails: bool,
    ) -> Result<(), ErrorKind> {
        let distinct: BTreeSet<_> = ids.iter().collect();
        if unknown
            || distinct.len() != ids.len()
            || !ids.iter().all(|u| self.unsuspendable.contains(u))
        {
            return Err(ErrorKind::NotTracked);
        }
        if callback_fails {
            return Err(ErrorKind::Callback);
        }
        for u in ids {
            self.unsuspendable.remove(u);
        }
        Ok(())
    }

    /// Something outside the tracker puts a new file with `data` at `name`
    /// (write a temporary file, rename it over). Handles to the old file
    /// keep it while active, but cannot be restored.
    pub fn replace(&mut self, name: &str, data: &[u8]) {
        let i = InodeId(self.fresh());
        let inode = Inode {
            data: data.to_vec(),
            location: Location::Named(name.to_string()),
            refs: 0,
        };
        self.inodes.insert(i, inode);
        if let Some(old) = self.names.insert(name.to_string(), i) {
            if self.inodes[&old].refs == 0 {
                self.inodes.remove(&old);
            }
        }
    }

    /// Something outside the tracker renames `from` to `to` (over whatever
    /// was there: that file loses its name). Nothing happens to a missing
    /// `from`.
    pub fn rename(&mut self, from: &str, to: &str) {
        if from == to {
            return;
        }
        let Some(i) = self.names.remove(from) else {
            return;
        };
        if let Some(inode) = self.inodes.get_mut(&i).filter(|x| x.refs == 0) {
            // Nothing holds it: it is just a file, under its new name.
            inode.location = Location::Named(to.to_string());
        }
        if let Some(old) = self.names.insert(to.to_string(), i) {
            if self.inodes[&old].refs == 0 {
                self.inodes.remove(&old);
            }
        }
    }

    /// Something outside the tracker deletes `name`.
    pub fn delete(&mut self, name: &str) {
        if let Some(old) = self.names.remove(name) {
            if self.inodes[&old].refs == 0 {
                self.inodes.remove(&old);
            }
        }
    }

    /// Every invariant of the model.
    pub fn check_invariants(&self) -> Result<(), Violation> {
        within_budget(self)?;
        in_use_is_active(self)?;
        inode_refs_match(self)?;
        files_are_reachable(self)
    }
}

/// Active handles and unsuspendable descriptors fit in the capacity.
pub fn within_budget(t: &Tracker) -> Result<(), Violation> {
    let (a, u) = (t.active(), t.unsuspendable.len());
    if a + u > t.capacity {
        return fail(
            "within_budget",
            format!("{a} active + {u} unsuspendable > capacity {}", t.capacity),
        );
    }
    Ok(())
}

/// A handle in use holds a descriptor.
pub fn in_use_is_active(t: &Tracker) -> Result<(), Violation> {
    match t.handles.iter().find(|(_, h)| h.users > 0 && !h.active) {
        Some((id, h)) => fail(
            "in_use_is_active",
            format!("handle {} has {} users but is suspended", id.0, h.users),
        ),
        None => Ok(()),
    }
}

/// Each inode counts the handles that hold it.
pub fn inode_refs_match(t: &Tracker) -> Result<(), Violation> {
    let mut refs: BTreeMap<InodeId, usize> = BTreeMap::new();
    for h in t.handles.values() {
        *refs.entry(h.inode).or_insert(0) += 1;
        if !t.inodes.contains_key(&h.inode) {
            return fail(
                "inode_refs_match",
                format!("a handle holds freed inode {}", h.inode.0),
            );
        }
    }
    for (id, i) in &t.inodes {
        let held = refs.get(id).copied().unwrap_or(0);
        if held != i.refs {
            return fail(
                "inode_refs_match",
                format!("inode {} counts {} handles, {held} hold it", id.0, i.refs),
            );
        }
    }
    Ok(())
}

/// A file with no handle is reachable by its name; a pooled file has a
/// handle (the last close deletes it).
pub fn files_are_reachable(t: &Tracker) -> Result<(), Violation> {
    for (id, i) in &t.inodes {
        if i.refs == 0 && t.reachable(*id).is_err() {
            return fail(
                "files_are_reachable",
                format!(
                    "inode {} at {:?} has no handle and no name",
                    id.0, i.location
                ),
            );
        }
        if i.refs == 0 && matches!(i.location, Location::Pooled(_)) {
            return fail(
                "files_are_reachable",
                format!("inode {} stays in the pool with no handle", id.0),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRUNC: Access = Access {
        trunc: true,
        ..Access::CREATE_RW
    };

    #[test]
    fn lru_handle_not_in_use_is_suspended() {
        let mut t = Tracker::new(2);
        let a = t.open("a", Access::CREATE_RW).unwrap();
        let b = t.open("b", Access::CREATE_RW).unwrap();
        t.get(a).unwrap(); // a is now the most recently used, and in use
        let c = t.open("c", Access::CREATE_RW).unwrap();
        assert_eq!(t.state(b), Some(HandleState::Suspended));
        // a is in use and c is the only other active handle: c goes.
        t.get(b).unwrap();
        assert_eq!(t.state(c), Some(HandleState::Suspended));
        assert_eq!(t.state(a), Some(HandleState::Active { users: 1 }));
        // Both active handles in use: no room.
        assert_eq!(t.get(c), Err(ErrorKind::NoRoom));
        let s = t.stats();
        assert_eq!((s.uses, s.misses, s.errors), (3, 2, 1));
        t.check_invariants().unwrap();
    }

    #[test]
    fn restore_keeps_offset_and_does_not_replay_trunc() {
        let mut t = Tracker::new(1);
        let a = t.open("a", TRUNC).unwrap();
        t.get(a).unwrap();
        t.write(a, b"abc").unwrap();
        t.put(a).unwrap();
        let b = t.open("b", Access::CREATE_RW).unwrap();
        assert_eq!(t.state(a), Some(HandleState::Suspended));
        t.get(a).unwrap();
        assert_eq!(t.state(b), Some(HandleState::Suspended));
        t.write(a, b"d").unwrap();
        assert_eq!(t.named_files()["a"], b"abcd");
    }

    #[test]
    fn planted_bugs_change_what_the_model_predicts() {
        let run = |bug: Option<PlantedBug>| {
            let mut t = Tracker::new(2);
            if let Some(b) = bug {
                t.plant(b);
            }
            let a = t.open("a", TRUNC).unwrap();
            let b = t.open("b", Access::CREATE_RW).unwrap();
            t.get(a).unwrap();
            t.write(a, b"xy").unwrap();
            t.put(a).unwrap();
            t.open("c", Access::CREATE_RW).unwrap();
            t.get(b).unwrap();
            t.put(b).unwrap();
            t.get(a).unwrap();
            t.write(a, b"z").unwrap();
            (t.stats(), t.named_files()["a"].clone())
        };
        let good = run(None);
        assert_eq!(good.1, b"xyz");
        for bug in [
            PlantedBug::EvictMostRecent,
            PlantedBug::ForgetOffset,
            PlantedBug::ReplayTrunc,
        ] {
            assert_ne!(run(Some(bug)), good, "{bug:?}");
        }
    }

    #[test]
    fn unsuspendable_room_is_all_or_nothing() {
        let mut t = Tracker::new(3);
        let a = t.open("a", Access::CREATE_RW).unwrap();
        t.open("b", Access::CREATE_RW).unwrap();
        t.get(a).unwrap();
        // 2 active (a in use) + 3 = 5 > 3: 2 to suspend, only b can go.
        assert_eq!(
            t.open_unsuspendable(3, Callback::Fresh),
            Err(ErrorKind::NoRoom)
        );
        assert_eq!(t.stats().active, 2, "nothing was suspended");
        let u = t.open_unsuspendable(1, Callback::Fresh).unwrap();
        assert_eq!(
            t.open_unsuspendable(1, Callback::Duplicate(u[0])),
            Err(ErrorKind::AlreadyTracked)
        );
        assert_eq!(
            t.open_unsuspendable(1, Callback::Count(2)),
            Err(ErrorKind::Invalid)
        );
        assert_eq!(
            t.open_unsuspendable(1, Callback::Fails),
            Err(ErrorKind::Callback)
        );
        assert_eq!(
            t.close_unsuspendable(&u, true, false),
            Err(ErrorKind::NotTracked)
        );
        assert_eq!(
            t.close_unsuspendable(&u, false, true),
            Err(ErrorKind::Callback)
        );
        assert_eq!(t.stats().unsuspendable, 1);
        t.close_unsuspendable(&u, false, false).unwrap();
        assert_eq!(t.stats().unsuspendable, 0);
        t.check_invariants().unwrap();
    }

    #[test]
    fn unlink_pools_the_file_until_the_last_close() {
        let mut t = Tracker::new(1);
        let a = t.open("f", Access::CREATE_RW).unwrap();
        let b = t.open("f", Access::CREATE_RW).unwrap();
        t.unlink(a).unwrap();
        assert!(t.named_files().is_empty());
        assert_eq!(t.pooled_files().keys().copied().collect::<Vec<_>>(), [0]);
        assert_eq!(t.unlink(b), Err(ErrorKind::AlreadyUnlinked));
        let c = t.open("f", Access::CREATE_RW).unwrap();
        t.unlink(c).unwrap();
        assert_eq!(t.pooled_files().len(), 2);
        for h in [a, b, c] {
            t.close(h).unwrap();
        }
        assert!(t.pooled_files().is_empty());
        t.check_invariants().unwrap();
    }

    #[test]
    fn replaced_file_is_not_restored() {
        let mut t = Tracker::new(1);
        let a = t.open("f", Access::CREATE_RW).unwrap();
        let g = t.open("g", Access::CREATE_RW).unwrap();
        t.replace("f", b"new");
        t.close(g).unwrap();
        assert_eq!(t.get(a), Err(ErrorKind::Replaced));
        assert_eq!(t.unlink(a), Err(ErrorKind::Replaced));
        t.close(a).unwrap();
        assert_eq!(t.named_files()["f"], b"new");
        t.check_invariants().unwrap();
    }

    /// A file renamed while a handle holds it is followed; one deleted or
    /// replaced keeps its handle's descriptor rather than lose the handle.
    #[test]
    fn rotated_files_are_followed_and_deleted_ones_kept_open() {
        let mut t = Tracker::new(2);
        let a = t.open("log", Access::CREATE_RW).unwrap();
        t.get(a).unwrap();
        t.write(a, b"one").unwrap();
        t.put(a).unwrap();
        t.rename("log", "log.1");
        let b = t.open("other", Access::CREATE_RW).unwrap();
        t.delete("other");
        // Room for one more: `a` (renamed, followed) is suspended, `b`
        // (deleted) cannot be.
        let c = t.open("c", Access::CREATE_RW).unwrap();
        assert_eq!(t.state(a), Some(HandleState::Suspended));
        assert!(matches!(t.state(b), Some(HandleState::Active { .. })));
        t.get(a).unwrap();
        t.write(a, b" two").unwrap();
        t.put(a).unwrap();
        assert_eq!(t.named_files()["log.1"], b"one two");
        // Restoring `a` made room by suspending `c`: `b` cannot be.
        assert_eq!(t.state(c), Some(HandleState::Suspended));
        // With every active handle unrestorable, there is no room at all.
        t.delete("log.1");
        assert_eq!(t.open("d", Access::CREATE_RW), Err(ErrorKind::NoRoom));
        for h in [a, b, c] {
            t.close(h).unwrap();
        }
        t.check_invariants().unwrap();
    }

    #[test]
    fn misuse_is_refused_not_panicked_on() {
        let mut t = Tracker::new(1);
        let a = t.open("a", Access::READ);
        assert_eq!(a, Err(ErrorKind::NotFound));
        let a = t.open("a", Access::CREATE_RW).unwrap();
        assert_eq!(t.put(a), Err(ErrorKind::Misuse));
        assert_eq!(t.read(a, 1), Err(ErrorKind::Misuse));
        t.get(a).unwrap();
        assert_eq!(t.close(a), Err(ErrorKind::Misuse));
        assert_eq!(t.get(HandleId(99)), Err(ErrorKind::Misuse));
    }
}
