//! The model's invariants, each stated once as a function that can fail.
//!
//! They run after every step in the tests, and after every call under
//! `debug_assertions` (see [`World::call`]). A violation carries the values
//! that broke it.
//!
//! Floor: above everything that changes the world (they read it, and the
//! collector's and the deferred work's books), below the system calls,
//! whose dispatch runs them.

use std::collections::{BTreeMap, BTreeSet};

use crate::file::FileKind;
use crate::filedesc::{FileSlot, TableId};
use crate::ids::{FileId, SockId};
use crate::pipe::PipeEnd;
use crate::violation::{fail, Violation};
use crate::waitq::{Queue, Waiter};
use crate::world::World;

/// Every invariant that holds between system calls.
pub fn check_all(w: &World) -> Result<(), Violation> {
    slots_name_live_files(w)?;
    refcounts_match(w)?;
    tables_consistent(w)?;
    share_counts_match(w)?;
    nothing_dead_reachable(w)?;
    epoll_links_agree(w)?;
    wait_queues_match(w)?;
    ctty_sessions_agree(w)?;
    socket_charges_match(w)?;
    collector_spares_the_reachable(w)?;
    garbage_is_collectable(w)?;
    quiescent(w)?;
    exited_world_is_empty(w)
}

/// Every used slot (larval or installed) names a live file.
pub fn slots_name_live_files(w: &World) -> Result<(), Violation> {
    for (t, table) in w.tables() {
        for (fd, slot) in table.slots() {
            let f = match slot {
                FileSlot::Installed { file, .. } | FileSlot::Larval(file) => file,
                FileSlot::Free => continue,
            };
            if w.files.get(f.0).is_none() {
                return fail(
                    "slots_name_live_files",
                    format!("table {t:?} fd {fd} names freed file {}", f.0),
                );
            }
        }
    }
    Ok(())
}

/// Each file's count equals the used slots naming it (counted per table, not
/// per process: a shared table holds one reference per slot) + its copies in
/// flight + those the collector holds between its phases + the references
/// callers hold.
pub fn refcounts_match(w: &World) -> Result<(), Violation> {
    let mut slots: BTreeMap<FileId, u32> = BTreeMap::new();
    for (_, table) in w.tables() {
        for (_, slot) in table.slots() {
            if let FileSlot::Installed { file, .. } | FileSlot::Larval(file) = slot {
                *slots.entry(file).or_insert(0) += 1;
            }
        }
    }
    let flight = w.in_flight_counts();
    let mut hit: BTreeMap<FileId, u32> = BTreeMap::new();
    for &f in w.hitlist() {
        *hit.entry(f).or_insert(0) += 1;
    }
    for (id, f) in w.files() {
        let s = slots.get(&id).copied().unwrap_or(0);
        let q = flight.get(&id).copied().unwrap_or(0);
        let h = hit.get(&id).copied().unwrap_or(0);
        if f.count() != s + q + h + f.callers {
            return fail(
                "refcounts_match",
                format!(
                    "file#{} has count {} but {s} slots + {q} in flight + {h} held by the collector + {} held by callers",
                    f.serial, f.count(), f.callers
                ),
            );
        }
    }
    Ok(())
}

/// Each table agrees with itself: bitmap, first-free hint and chunks with
/// its slots, and what each slot publishes to lock-free readers with what
/// its writer installed (see [`crate::mt::Filedesc::check`]).
pub fn tables_consistent(w: &World) -> Result<(), Violation> {
    for (t, table) in w.tables() {
        if let Err(e) = table.check() {
            return fail("tables_consistent", format!("table {t:?}: {e}"));
        }
    }
    Ok(())
}

/// Each table's share count (its `Arc`'s strong count) equals the
/// processes using it: nothing else holds a table between calls.
pub fn share_counts_match(w: &World) -> Result<(), Violation> {
    let mut users: BTreeMap<TableId, usize> = BTreeMap::new();
    for (_, pid) in w.processes() {
        *users.entry(w.proc(pid).table_id()).or_insert(0) += 1;
    }
    for (t, table) in w.tables() {
        let n = users.get(&t).copied().unwrap_or(0);
        let count = crate::mt::sync::Arc::strong_count(table);
        if count != n {
            return fail(
                "share_counts_match",
                format!("table {t:?} has share count {count} but {n} processes"),
            );
        }
    }
    if w.procs.len() != w.names.len() {
        return fail(
            "share_counts_match",
            format!("{} processes but {} names", w.procs.len(), w.names.len()),
        );
    }
    Ok(())
}

/// Nothing with count zero is reachable: no stored file has count 0, files in
/// flight and epoll registrations name live files, pipes exist exactly while
/// a file refers to them, with end flags to match, a pty has exactly the
/// master and slave files it counts, and a socket has a file exactly while
/// it is open.
pub fn nothing_dead_reachable(w: &World) -> Result<(), Violation> {
    let mut pipe_ends: BTreeMap<u32, [bool; 2]> = BTreeMap::new();
    let mut sock_files: BTreeMap<SockId, u32> = BTreeMap::new();
    // Master files, slave files.
    let mut pty_files: BTreeMap<u32, (u32, u32)> = BTreeMap::new();
    for (id, f) in w.files() {
        // Torn down later (delayed_fput): dead, and exactly that.
        let delayed = w.delayed_fput.contains(&id);
        if delayed && (f.count() != 0 || f.handle.closes() != 1) {
            return fail(
                "nothing_dead_reachable",
                format!(
                    "file#{} waits for delayed_fput with count {}",
                    f.serial,
                    f.count()
                ),
            );
        }
        if !delayed && (f.count() == 0 || f.handle.is_closed() || *f.handle.data() != id) {
            return fail(
                "nothing_dead_reachable",
                format!(
                    "file#{} (id {}) has count {}, closef ran {} times, and its table file names id {}",
                    f.serial,
                    id.0,
                    f.count(),
                    f.handle.closes(),
                    f.handle.data().0
                ),
            );
        }
        match &f.kind {
            FileKind::Pipe(p, end) => {
                let e = pipe_ends.entry(p.0).or_default();
                e[matches!(end, PipeEnd::Write) as usize] = true;
            }
            FileKind::Socket(s) => *sock_files.entry(*s).or_default() += 1,
            FileKind::PtyMaster(p) => pty_files.entry(p.0).or_default().0 += 1,
            FileKind::PtySlave(p) => pty_files.entry(p.0).or_default().1 += 1,
            FileKind::Epoll(e) => {
                for &(fd, t) in e.interest.keys() {
                    if w.files.get(t.0).is_none() {
                        return fail(
                            "nothing_dead_reachable",
                            format!(
                                "epoll file#{} watches fd {fd} of freed file {}",
                                f.serial, t.0
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
        let _ = id;
    }
    for (i, p) in w.ptys.iter() {
        let files = pty_files.remove(&i).unwrap_or_default();
        if files != (u32::from(p.master), p.slaves) {
            return fail(
                "nothing_dead_reachable",
                format!(
                    "pty {i}: master={} slaves={} but files {files:?}",
                    p.master, p.slaves
                ),
            );
        }
    }
    if !pty_files.is_empty() {
        return fail(
            "nothing_dead_reachable",
            format!("files name freed ptys {:?}", pty_files.keys()),
        );
    }
    for (i, p) in w.pipes.iter() {
        if pipe_ends.get(&i) != Some(&[p.reader, p.writer]) {
            return fail(
                "nothing_dead_reachable",
                format!(
                    "pipe {i}: reader={} writer={} but files {:?}",
                    p.reader,
                    p.writer,
                    pipe_ends.get(&i)
                ),
            );
        }
    }
    for (i, s) in w.socks.iter() {
        let files = sock_files.remove(&i).unwrap_or(0);
        if files != u32::from(s.open) || (s.open && s.dead) {
            return fail(
                "nothing_dead_reachable",
                format!(
                    "socket {}: open={} dead={} but {files} files",
                    i.0, s.open, s.dead
                ),
            );
        }
        if let Some(f) = s.queued_files().find(|f| w.files.get(f.0).is_none()) {
            return fail(
                "nothing_dead_reachable",
                format!("socket {} carries freed file {}", i.0, f.0),
            );
        }
    }
    if pipe_ends.len() != w.pipes.len() || !sock_files.is_empty() {
        return fail(
            "nothing_dead_reachable",
            "a file names a freed pipe or socket".to_string(),
        );
    }
    Ok(())
}

/// Each epoll registration is listed in its target's `watched_by`, once per
/// registration, and nothing else is.
pub fn epoll_links_agree(w: &World) -> Result<(), Violation> {
    let mut want: BTreeMap<(FileId, FileId), u32> = BTreeMap::new();
    for (ep, f) in w.files() {
        if let FileKind::Epoll(e) = &f.kind {
            for &(_, t) in e.interest.keys() {
                *want.entry((t, ep)).or_insert(0) += 1;
            }
        }
    }
    let mut have: BTreeMap<(FileId, FileId), u32> = BTreeMap::new();
    for (t, f) in w.files() {
        for &ep in &f.watched_by {
            *have.entry((t, ep)).or_insert(0) += 1;
        }
    }
    if want != have {
        return fail(
            "epoll_links_agree",
            format!("registrations {want:?} but watched_by {have:?}"),
        );
    }
    Ok(())
}

/// Each epoll registration waits on exactly the queues its file's `poll`
/// names, once each, and nothing else waits anywhere; each ready list
/// holds registrations, each once, and no scan is left half done; every
/// wake-up was delivered; a datagram socket's relay waits on its own peer,
/// which lists it once.
pub fn wait_queues_match(w: &World) -> Result<(), Violation> {
    let name = "wait_queues_match";
    let mut want: BTreeSet<(Queue, Waiter)> = BTreeSet::new();
    for (ep, f) in w.files() {
        let FileKind::Epoll(e) = &f.kind else {
            continue;
        };
        for &key in e.interest.keys() {
            for q in w.poll_queues(key.1) {
                want.insert((q, Waiter { ep, key }));
            }
        }
        let ready: BTreeSet<_> = e.ready.iter().collect();
        if ready.len() != e.ready.len() || !ready.iter().all(|&&k| e.interest.contains_key(&k)) {
            return fail(name, format!("epoll {ep:?} has ready list {:?}", e.ready));
        }
        if e.scan.is_some() {
            return fail(name, format!("epoll {ep:?} is still scanning"));
        }
    }
    let listed: Vec<(Queue, Waiter)> = w.waiters.iter().collect();
    let have: BTreeSet<(Queue, Waiter)> = listed.iter().copied().collect();
    if have != want || listed.len() != have.len() {
        return fail(
            name,
            format!("registrations want {want:?}, queues hold {listed:?}"),
        );
    }
    if !w.socks.wakes.is_empty() {
        return fail(name, format!("wake-ups not delivered: {:?}", w.socks.wakes));
    }
    let socks: BTreeMap<SockId, &crate::socket::Sock> = w.socks.iter().collect();
    for (&s, sk) in &socks {
        if let Some(o) = sk.peer_wake {
            let listed = socks
                .get(&o)
                .map_or(0, |o| o.relays.iter().filter(|&&r| r == s).count());
            if sk.peer != Some(o) || listed != 1 {
                return fail(
                    name,
                    format!(
                        "socket {s:?} relays from {o:?} (peer {:?}, listed {listed})",
                        sk.peer
                    ),
                );
            }
        }
        if sk
            .relays
            .iter()
            .any(|r| socks.get(r).map(|r| r.peer_wake) != Some(Some(s)))
        {
            return fail(name, format!("socket {s:?} lists relays {:?}", sk.relays));
        }
    }
    Ok(())
}

/// A controlling terminal is the slave of a live pty master, and the
/// terminal of the process's own session; a pty that a session has as its
/// terminal belongs to a session whose leader lives.
pub fn ctty_sessions_agree(w: &World) -> Result<(), Violation> {
    let name = "ctty_sessions_agree";
    for (p, pid) in w.processes() {
        let proc = w.proc(pid);
        let Some(t) = proc.ctty else {
            continue;
        };
        let session = match w.ptys.get(t.0) {
            Some(pty) if pty.master => pty.session,
            _ => return fail(name, format!("{p}'s terminal {t:?} is no live pty")),
        };
        if session.is_none() || session != proc.session {
            return fail(
                name,
                format!(
                    "{p} in session {:?} has the terminal of {session:?}",
                    proc.session
                ),
            );
        }
    }
    for (id, pty) in w.ptys.iter() {
        if let Some(s) = pty.session {
            let led = w
                .processes()
                .any(|(_, pid)| w.proc(pid).leader && w.proc(pid).session == Some(s));
            if !led {
                return fail(
                    name,
                    format!("pty {id} is the terminal of session {s}, led by no one"),
                );
            }
        }
    }
    Ok(())
}

/// Each socket's send charge equals the truesize of what it sent that is
/// still queued, and its hold count the things that name it: messages it
/// sent, sockets whose peer it is, a listener's queue. A dead socket that
/// nothing holds is freed.
pub fn socket_charges_match(w: &World) -> Result<(), Violation> {
    let mut charged: BTreeMap<SockId, u64> = BTreeMap::new();
    let mut held: BTreeMap<SockId, u32> = BTreeMap::new();
    for (_, s) in w.socks.iter() {
        for seg in &s.queue {
            *charged.entry(seg.from).or_default() += seg.truesize;
            *held.entry(seg.from).or_default() += 1;
        }
        for &o in s.peer.iter().chain(&s.pending) {
            *held.entry(o).or_default() += 1;
        }
    }
    for (i, s) in w.socks.iter() {
        let (c, h) = (
            charged.remove(&i).unwrap_or(0),
            held.remove(&i).unwrap_or(0),
        );
        if s.wmem != c || s.held != h || (s.dead && h == 0 && s.queue.is_empty()) {
            return fail(
                "socket_charges_match",
                format!(
                    "socket {} is charged {} for {c} queued and held {} by {h} (dead: {})",
                    i.0, s.wmem, s.held, s.dead
                ),
            );
        }
    }
    if let Some(i) = charged.keys().chain(held.keys()).next() {
        return fail(
            "socket_charges_match",
            format!("freed socket {} is still named", i.0),
        );
    }
    Ok(())
}

/// Between calls no slot is larval and no caller holds a reference.
pub fn quiescent(w: &World) -> Result<(), Violation> {
    for (t, table) in w.tables() {
        if let Some((fd, _)) = table
            .slots()
            .into_iter()
            .find(|(_, s)| matches!(s, FileSlot::Larval(_)))
        {
            return fail("quiescent", format!("table {t:?} fd {fd} is larval"));
        }
    }
    if let Some((_, f)) = w.files().find(|(_, f)| f.callers != 0) {
        return fail(
            "quiescent",
            format!(
                "file#{} still has {} caller references",
                f.serial, f.callers
            ),
        );
    }
    Ok(())
}

/// What a process can still reach, found afresh (not with the collector's
/// marking): every file a table names or a caller holds, and everything in
/// flight in the queue of a reachable socket end. The collector's garbage
/// contains none of it.
pub fn collector_spares_the_reachable(w: &World) -> Result<(), Violation> {
    let garbage = w.unreachable();
    if garbage.is_empty() {
        return Ok(());
    }
    let mut reach: BTreeSet<FileId> = BTreeSet::new();
    for (_, table) in w.tables() {
        for (_, slot) in table.slots() {
            if let FileSlot::Installed { file, .. } | FileSlot::Larval(file) = slot {
                reach.insert(file);
            }
        }
    }
    reach.extend(w.files().filter(|(_, f)| f.callers > 0).map(|(id, _)| id));
    let mut todo: Vec<FileId> = reach.iter().copied().collect();
    while let Some(f) = todo.pop() {
        if let FileKind::Socket(s) = w.file(f).kind {
            for g in w.socks.in_flight(s) {
                if reach.insert(g) {
                    todo.push(g);
                }
            }
        }
    }
    match garbage.iter().find(|f| reach.contains(f)) {
        Some(f) => fail(
            "collector_spares_the_reachable",
            format!(
                "the collector counts file#{} as garbage, but a process can still receive it",
                w.file(*f).serial
            ),
        ),
        None => Ok(()),
    }
}

/// Progress: once the collector has run (both phases, until it frees
/// nothing more), nothing it would call garbage is left, and every file
/// it took out of a queue is freed or still held elsewhere.
pub fn garbage_is_collectable(w: &World) -> Result<(), Violation> {
    if w.unreachable().is_empty() {
        return Ok(());
    }
    let mut c = w.clone();
    c.collect_garbage();
    let left = c.unreachable();
    match left.iter().next() {
        Some(f) => fail(
            "garbage_is_collectable",
            format!(
                "after the collector ran, file#{} is still garbage",
                c.file(*f).serial
            ),
        ),
        None => Ok(()),
    }
}

/// When every process has exited, nothing is left: every file's count went
/// to zero, cycles of sockets in flight included (the garbage collector's
/// job), and no pipe or socket remains (tables are held by processes,
/// so none can outlive them). With deferred work, once the pending
/// collection has run.
pub fn exited_world_is_empty(w: &World) -> Result<(), Violation> {
    if !w.names.is_empty() {
        return Ok(());
    }
    let collected;
    let w = if w.deferred {
        let mut c = w.clone();
        c.collect_garbage();
        collected = c;
        &collected
    } else {
        w
    };
    let left: BTreeSet<u64> = w.files().map(|(_, f)| f.serial).collect();
    if !left.is_empty() || !w.pipes.is_empty() || !w.socks.is_empty() {
        return fail(
            "exited_world_is_empty",
            format!(
                "no process left but files {left:?}, {} pipes, {} sockets",
                w.pipes.len(),
                w.socks.len()
            ),
        );
    }
    Ok(())
}
