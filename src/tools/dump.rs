//! Dumping a tree into an [`Image`]: from the model's world (which knows
//! everything), or from live processes on Linux (what `/proc`, `kcmp`,
//! `tee` and `MSG_PEEK` can tell without disturbing them).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;

use fdlab_model::file::FileKind;
use fdlab_model::kind::FileType;
use fdlab_model::pipe::PipeEnd;
use fdlab_model::vnode::VnodeKind;
use fdlab_model::{Errno, Events, FileId, OFlags, SockType, World};

use crate::backend::linux::capture::{Capture, CapturedProc};
use crate::backend::linux::observe::procfs;
use crate::backend::linux::observe::snapshot::scenario_name;

use super::image::{
    Bytes, FdImage, FileImage, Image, Listen, Message, Object, PairImage, PipeImage, ProcImage,
    Registration, Shut, TableImage, Unrestorable,
};

/// Why a process with a controlling terminal cannot be restored as it is.
const NO_CTTY: &str = "its controlling terminal is no pty whose master is in the tree, or its session's leader is not: restored, it has none";

/// Why a pty with bytes waiting in it is listed: a read of its master or
/// of a slave would find them, and the restored pty starts empty.
const PTY_BUFFERED: &str =
    "what is buffered in a pseudo-terminal is not dumped; restore opens a new one";

/// Why a pty slave whose master is not in the image cannot be restored.
const NO_PTY_MASTER: &str = "its pty's master is not in the tree (closed, so the slave is hung up, or held outside): restore makes a slave from its master";

/// The number of the pty `key` (a backend's own name for it), numbering
/// them in the order they are met.
fn pty_number<K: std::hash::Hash + Eq>(ptys: &mut HashMap<K, usize>, key: K) -> usize {
    let next = ptys.len();
    *ptys.entry(key).or_insert(next)
}

/// Why a connection waiting in a listener's queue cannot be restored
/// without its client.
const NO_CLIENT: &str = "its client is closed or outside the tree: restore makes a waiting connection by connecting a client";

/// Why a waiting connection with data cannot be restored as it is.
const EMBRYO_DATA: &str = "its client sent data, which waits on the listener's side where no dump can read it without accepting the connection";

/// Fills listening socket `file`'s queue: each waiting connection, oldest
/// first, as the pair of its client (`None`: the client is no file of the
/// image) and whether data waits on the listener's side. What restore
/// cannot make is listed, alike for both backends' dumps.
fn add_pending(img: &mut Image, file: usize, waiting: Vec<(Option<usize>, bool)>) {
    let mut pending = Vec::new();
    for (pair, data) in waiting {
        let what = format!("file {file}: a connection waiting in its queue");
        match pair {
            None => img.unrestorable.push(Unrestorable {
                what,
                why: NO_CLIENT.into(),
            }),
            Some(p) => {
                if data {
                    img.unrestorable.push(Unrestorable {
                        what,
                        why: EMBRYO_DATA.into(),
                    });
                }
                pending.push(p);
            }
        }
    }
    if let Object::Unix {
        listen: Some(l), ..
    } = &mut img.files[file].object
    {
        l.pending = pending;
    }
}

/// The messages of a model socket's queue, with the ids of the files in
/// flight in them.
fn messages(queue: &VecDeque<fdlab_model::socket::Segment>, ids: &mut Ids) -> Vec<Message> {
    queue
        .iter()
        .map(|seg| Message {
            data: Bytes(seg.data.clone()),
            files: seg.fds.iter().map(|&g| ids.id(g)).collect(),
        })
        .collect()
}

/// The messages a dump peeked from socket `ino`'s queue, with the ids of
/// the files in flight in them.
fn captured_messages(cap: &Capture, ino: u64, ids: &mut Ids) -> Vec<Message> {
    cap.queues
        .get(&ino)
        .into_iter()
        .flatten()
        .map(|m| Message {
            data: Bytes(m.data.clone()),
            files: m.files.iter().map(|&f| ids.id_of(f)).collect(),
        })
        .collect()
}

/// Why a datagram socket's peer cannot be connected to again.
const PEER_UNREACHABLE: &str = "it sends to a socket that has no name, is no file of the tree, or is connected to another (which refuses a new connect): restore connects to a peer by its name";

/// Sets the peer of each datagram socket that sends to one (its file, and
/// the peer by the backend's own name for sockets, which `sock_file` maps
/// to the files of the image that are sockets); a peer that restore cannot
/// connect to again is listed, alike for both backends' dumps.
fn link_peers<K: std::hash::Hash + Eq>(
    img: &mut Image,
    sends_to: Vec<(usize, K)>,
    sock_file: &HashMap<K, usize>,
) {
    for (k, p) in sends_to {
        let p = sock_file.get(&p).copied();
        let reachable = |p: usize| {
            matches!(img.files[p].object, Object::Unix { .. }) && img.socket_name(p).is_some()
        };
        match p.filter(|&p| reachable(p)) {
            Some(p) => {
                if let Object::Unix { peer, .. } = &mut img.files[k].object {
                    *peer = Some(p);
                }
            }
            None => {
                img.unrestorable.push(Unrestorable {
                    what: format!("file {k} (unix datagram socket)"),
                    why: PEER_UNREACHABLE.into(),
                });
                // Without its peer, a socket with a name is restored
                // unconnected; one without is nothing restore can tell
                // from a pair's end whose peer closed, and is left out.
                if img.socket_name(k).is_none() {
                    img.files[k].object = Object::Other {
                        what: "unix datagram socket".into(),
                    };
                }
            }
        }
    }
}

/// Links each connection to its listener: an end named as a listening
/// socket of the image was accepted from it; the side of a waiting
/// connection that is no file yet is in its queue, and has its name.
fn link_listeners(img: &mut Image) {
    // By type and name: the abstract namespace has one of each per type.
    let mut by_name: HashMap<(SockType, String), usize> = HashMap::new();
    let mut waiting: Vec<(usize, usize)> = Vec::new();
    for f in &img.files {
        if let Object::Unix {
            ty,
            name: Some(n),
            listen: Some(l),
            ..
        } = &f.object
        {
            by_name.insert((*ty, n.clone()), f.id);
            waiting.extend(l.pending.iter().map(|&p| (p, f.id)));
        }
    }
    let mut is_file = vec![[false; 2]; img.pairs.len()];
    for f in &img.files {
        if let Object::Socket { pair, end } = f.object {
            is_file[pair][end] = true;
        }
    }
    for p in &mut img.pairs {
        for e in 0..2 {
            p.listener[e] = p.names[e]
                .as_ref()
                .and_then(|n| by_name.get(&(p.ty, n.clone())).copied());
        }
    }
    for (pair, l) in waiting {
        let p = &mut img.pairs[pair];
        if let Some(e) = (0..2).find(|&e| !is_file[pair][e]) {
            p.listener[e] = Some(l);
            if let Object::Unix { name, .. } = &img.files[l].object {
                p.names[e] = name.clone();
            }
        }
    }
}

/// What both backends' dumps settle last: pty slaves without their master,
/// connections and their listeners, and the shutdown state of pairs with
/// an end missing.
fn settle_image(img: &mut Image) {
    orphan_slaves(img);
    link_listeners(img);
    // A pair end whose peer is no file of the image (unrestorable) has its
    // peer closed when restored, which shuts it both ways: what it shows
    // of shutdown now cannot be kept, and the image does not claim it.
    let mut ends = vec![0; img.pairs.len()];
    for f in &img.files {
        if let Object::Socket { pair, .. } = f.object {
            ends[pair] += 1;
        }
    }
    for (p, n) in img.pairs.iter_mut().zip(ends) {
        if n < 2 {
            p.shutdown = [None, None];
        }
    }
}

/// Slaves whose pty has no master in the image: left out, listed with the
/// reason (alike for both backends' dumps).
fn orphan_slaves(img: &mut Image) {
    let masters = img.pty_masters();
    for f in &mut img.files {
        if let Object::PtySlave { pty } = f.object {
            if !masters.contains(&pty) {
                img.unrestorable.push(Unrestorable {
                    what: format!("file {} (pty slave)", f.id),
                    why: NO_PTY_MASTER.into(),
                });
                f.object = Object::Other {
                    what: "pty slave".into(),
                };
            }
        }
    }
}

/// Why a process whose session lost its leader cannot be restored in it.
const LEADER_GONE: &str = "its session's leader has exited: restore makes a session only in its leader (setsid), and the process in it by fork; restored, it is in the restorer's session";

/// Why an `EPOLLONESHOT` registration that fired cannot be restored.
const ONESHOT_FIRED: &str = "EPOLLONESHOT fired and disabled it; EPOLL_CTL_ADD would arm it again";

/// What a dump sees of a process's session, in image terms.
struct SessionSeen {
    /// The process of the image that leads its session, if one does.
    leader: Option<usize>,
    /// Its session is none the tree was started in, and its leader has
    /// exited.
    gone: bool,
    /// Its controlling terminal, as a pty number of the image, or `Some`
    /// of `None` for a terminal that is no pty of the image.
    ctty: Option<Option<usize>>,
}

/// Gives each process its session and controlling terminal, listing what
/// cannot be restored. One function for both dumps, so that they list the
/// same in the same order. After the files: a terminal is restorable only
/// when its master is a file of the image.
fn settle_sessions(img: &mut Image, seen: &[SessionSeen]) {
    let masters = img.pty_masters();
    for (p, s) in img.processes.iter_mut().zip(seen) {
        let mut refuse = |why: &str| {
            img.unrestorable.push(Unrestorable {
                what: p.name.clone(),
                why: why.into(),
            });
        };
        if s.gone {
            refuse(LEADER_GONE);
        }
        p.session = s.leader;
        p.ctty = match s.ctty {
            None => None,
            Some(Some(n)) if s.leader.is_some() && masters.contains(&n) => Some(n),
            Some(_) => {
                refuse(NO_CTTY);
                None
            }
        };
    }
}

/// What a dump sees of a unix socket, from the model or from `sock_diag`,
/// to decide alike on both whether it can be restored: the two images of
/// one tree must compare equal.
struct SocketSeen {
    ty: SockType,
    named: bool,
    listening: bool,
    /// A stream or seqpacket socket from `socket(2)`, never connected.
    never_connected: bool,
    /// It has a peer (one with a file).
    peer: bool,
    /// Its peer's peer is it, and its peer is another: a pair. (A
    /// datagram socket connected to itself is no pair: it sends to its
    /// own name.)
    mutual: bool,
}

impl SocketSeen {
    fn of_diag(
        s: &crate::backend::linux::sys::UnixSock,
        ino: u32,
        all: &HashMap<u32, crate::backend::linux::sys::UnixSock>,
    ) -> SocketSeen {
        SocketSeen {
            ty: s.sock_type(),
            named: s.name.is_some(),
            listening: s.listening(),
            never_connected: s.never_connected(),
            peer: s.peer != 0,
            mutual: s.peer != ino && all.get(&s.peer).is_some_and(|p| p.peer == ino),
        }
    }

    /// A socket that is no end of a pair: `socket(2)`'s, maybe bound,
    /// maybe listening; or a datagram socket with a name or one that sends
    /// to a peer that does not send back. (A datagram socket with neither
    /// is an end whose peer is gone, or was never there: which, no dump
    /// can tell.)
    fn unpaired(&self) -> bool {
        self.listening
            || self.never_connected
            || (self.ty == SockType::Dgram && (self.named || self.peer) && !self.mutual)
    }
}

/// The image of the model's world: every process, table and open file,
/// what is queued in pipes and sockets, files in flight.
///
/// The world is settled first, on a copy (see [`settle`]): files in flight
/// that no process can ever receive (a socket in its own queue, no
/// descriptor left) are the unix collector's to free, at a moment Linux
/// chooses; the image is of the tree as it is once they are gone. (A dump
/// of live processes cannot see into them either.)
pub fn from_model(w: &World) -> Image {
    let settled = settle(w);
    let w = &settled;
    let mut img = Image::new();
    // Processes, parents before children (by depth, then name).
    let names: Vec<(String, fdlab_model::Pid)> =
        w.processes().map(|(n, p)| (n.to_string(), p)).collect();
    let parent_of =
        |pid: fdlab_model::Pid| w.proc(pid).parent.clone().filter(|n| w.pid(n).is_some());
    let depth = |mut pid: fdlab_model::Pid| {
        let mut d = 0;
        while let Some(p) = parent_of(pid).and_then(|n| w.pid(&n)) {
            pid = p;
            d += 1;
        }
        d
    };
    let mut order: Vec<(usize, String, fdlab_model::Pid)> =
        names.into_iter().map(|(n, p)| (depth(p), n, p)).collect();
    order.sort();
    let index: HashMap<String, usize> = order
        .iter()
        .enumerate()
        .map(|(i, (_, n, _))| (n.clone(), i))
        .collect();
    let mut ids = Ids::default();
    // Each process's session leader, whether its session lost its
    // leader, and its terminal (a backend's key).
    let mut sessions = Vec::new();
    let mut tables: HashMap<fdlab_model::filedesc::TableId, usize> = HashMap::new();
    for (_, name, pid) in &order {
        let p = w.proc(*pid);
        let next = tables.len();
        let t = *tables.entry(p.table_id()).or_insert(next);
        if t == img.tables.len() {
            let fds = w
                .table_of(*pid)
                .installed_all()
                .into_iter()
                .map(|(fd, f, cloexec)| FdImage {
                    fd: fd.get(),
                    file: ids.id(f),
                    // As Linux's image has it: what /proc shows.
                    cloexec: w.cloexec_shown(f, cloexec),
                })
                .collect();
            img.tables.push(TableImage { id: t, fds });
        }
        let leader = p.session.and_then(|s| {
            order
                .iter()
                .find(|(_, _, q)| w.proc(*q).leader && w.proc(*q).session == Some(s))
                .map(|(_, n, _)| index[n])
        });
        sessions.push((leader, p.session.is_some() && leader.is_none(), p.ctty));
        img.processes.push(ProcImage {
            id: img.processes.len(),
            name: name.clone(),
            parent: parent_of(*pid).and_then(|n| index.get(&n).copied()),
            table: t,
            rlimit: Some(p.rlimit),
            session: None,
            ctty: None,
        });
    }
    // Files, and what they reach: files in flight and epoll targets get
    // ids as they are met.
    let mut pipes: HashMap<fdlab_model::PipeId, usize> = HashMap::new();
    let mut pairs: HashMap<fdlab_model::SockId, usize> = HashMap::new();
    let mut ptys: HashMap<fdlab_model::PtyId, usize> = HashMap::new();
    // Listening sockets: their file, and their embryos, oldest first.
    let mut listeners: Vec<(usize, Vec<fdlab_model::SockId>)> = Vec::new();
    // Each socket's file; datagram sockets that send to a peer, and it.
    let mut sock_file: HashMap<fdlab_model::SockId, usize> = HashMap::new();
    let mut sends_to: Vec<(usize, fdlab_model::SockId)> = Vec::new();
    let mut k = 0;
    while k < ids.order.len() {
        let fid = ids.order[k];
        let f = w.file(fid);
        let object = match &f.kind {
            FileKind::Vnode(v) => {
                let vn = w.fs().vnode(*v);
                match vn.kind {
                    VnodeKind::Regular(..) => Object::Regular {
                        path: vn.path.clone(),
                        offset: f.offset,
                    },
                    VnodeKind::Directory => Object::Directory {
                        path: vn.path.clone(),
                        offset: f.offset,
                    },
                    _ => Object::Chardev {
                        path: vn.path.clone(),
                        pty: None,
                    },
                }
            }
            FileKind::PtySlave(p) => Object::PtySlave {
                pty: pty_number(&mut ptys, *p),
            },
            FileKind::PtyMaster(p) => {
                // As Linux's dump sees a master: what waits in the slave's
                // line discipline is out of its sight, as it is out of
                // restore's reach.
                let pty = w.pty(*p);
                if !(pty.input.is_empty() && pty.to_master.is_empty() && pty.output.is_empty()) {
                    img.unrestorable.push(Unrestorable {
                        what: format!("file {k} (/dev/ptmx)"),
                        why: PTY_BUFFERED.into(),
                    });
                }
                Object::Chardev {
                    path: "/dev/ptmx".into(),
                    pty: Some(pty_number(&mut ptys, *p)),
                }
            }
            FileKind::Pipe(p, end) => {
                let next = pipes.len();
                let pipe = *pipes.entry(*p).or_insert(next);
                if pipe == img.pipes.len() {
                    img.pipes.push(PipeImage {
                        id: pipe,
                        data: Bytes(w.pipe(*p).contents()),
                        capacity: None,
                    });
                }
                Object::Pipe { pipe, end: *end }
            }
            FileKind::Socket(s) => {
                let sk = w.sock(*s);
                // What sock_diag shows of the peer: only one with a file.
                let peer = sk.peer.filter(|&p| w.sock(p).open);
                let seen = SocketSeen {
                    ty: sk.ty,
                    named: sk.name.is_some(),
                    listening: sk.listening(),
                    never_connected: sk.ty != SockType::Dgram
                        && sk.state == fdlab_model::socket::State::Unconnected,
                    peer: peer.is_some(),
                    mutual: peer.is_some_and(|p| p != *s && w.sock(p).peer == Some(*s)),
                };
                sock_file.insert(*s, k);
                if seen.unpaired() {
                    let listen = match sk.state {
                        fdlab_model::socket::State::Listening { backlog } => {
                            listeners.push((k, sk.pending.iter().copied().collect()));
                            Some(Listen {
                                backlog,
                                pending: Vec::new(),
                            })
                        }
                        _ => None,
                    };
                    if let Some(p) = peer {
                        sends_to.push((k, p));
                    }
                    Object::Unix {
                        ty: sk.ty,
                        name: sk.name.clone(),
                        listen,
                        peer: None,
                        queued: messages(&sk.queue, &mut ids),
                        shutdown: Shut::from_bits(sk.shutdown).filter(|_| sk.ty == SockType::Dgram),
                    }
                } else {
                    let key = peer.map_or(*s, |p| p.min(*s));
                    let next = pairs.len();
                    let pair = *pairs.entry(key).or_insert(next);
                    if pair == img.pairs.len() {
                        img.pairs.push(PairImage::new(pair, sk.ty));
                    }
                    let end = usize::from(key != *s);
                    img.pairs[pair].names[end] = sk.name.clone();
                    img.pairs[pair].queued[end] = messages(&sk.queue, &mut ids);
                    img.pairs[pair].reset[end] = sk.err == Some(Errno::ECONNRESET);
                    // What sock_diag shows: with the peer gone, shut both
                    // ways, which closing the peer again makes.
                    img.pairs[pair].shutdown[end] = peer.and_then(|_| Shut::from_bits(sk.shutdown));
                    Object::Socket { pair, end }
                }
            }
            FileKind::Epoll(e) => {
                for (&(fd, _), &ev) in &e.interest {
                    if fdlab_model::epoll::disabled(ev) {
                        img.unrestorable.push(Unrestorable {
                            what: format!(
                                "file {k} (anon_inode:[eventpoll]): its registration under {}",
                                fd.get()
                            ),
                            why: ONESHOT_FIRED.into(),
                        });
                    }
                }
                Object::Epoll {
                    registrations: e
                        .interest
                        .iter()
                        .map(|(&(fd, t), ev)| Registration {
                            fd: fd.get(),
                            file: ids.id(t),
                            events: ev.shown().to_string(),
                        })
                        .collect(),
                }
            }
            FileKind::Eventfd(e) => Object::Eventfd { count: e.count },
            FileKind::Larval => unreachable!("no larval file between calls"),
        };
        img.files.push(FileImage {
            id: k,
            flags: f.flags.status_string(),
            object,
        });
        k += 1;
    }
    // Each listener's waiting connections: an embryo (no file, no inode:
    // sock_diag shows the client's peer as none) and its client, a pair
    // of one end.
    for (file, embryos) in listeners {
        let waiting = embryos
            .into_iter()
            .map(|e| {
                let client = w.sock(e).peer.filter(|&c| w.sock(c).open);
                let pair = client.and_then(|c| pairs.get(&c).copied());
                (pair, !w.sock(e).queue.is_empty())
            })
            .collect();
        add_pending(&mut img, file, waiting);
    }
    link_peers(&mut img, sends_to, &sock_file);
    settle_image(&mut img);
    let seen: Vec<SessionSeen> = sessions
        .into_iter()
        .map(|(leader, gone, ctty)| SessionSeen {
            leader,
            gone,
            ctty: ctty.map(|t| ptys.get(&t).copied()),
        })
        .collect();
    settle_sessions(&mut img, &seen);
    canonical(&img)
}

/// The image of live processes, as [`LinuxBackend::capture`] read them:
/// `name` names each process in the image; with `sandbox`, paths under it
/// are written relative to it, as scenarios write them.
///
/// What restore cannot make is in the image as `Object::Other` (or left
/// out, for an epoll registration of a file out of reach) and listed in
/// `unrestorable` with the reason.
pub fn from_capture(
    cap: &Capture,
    name: impl Fn(&CapturedProc) -> String,
    sandbox: Option<&Path>,
) -> Image {
    let snap = &cap.snapshot;
    let mut img = Image::new();
    let mut ids = Ids::default();
    // Each process's session leader, whether its session lost its
    // leader, and its terminal (a backend's key).
    let mut sessions = Vec::new();
    let mut tables: HashMap<usize, usize> = HashMap::new();
    let index: HashMap<i32, usize> = cap
        .procs
        .iter()
        .enumerate()
        .map(|(i, p)| (p.pid, i))
        .collect();
    for (i, p) in cap.procs.iter().enumerate() {
        let Some(&(_, t)) = snap.tasks.iter().find(|(pid, _)| *pid == p.pid) else {
            img.unrestorable.push(Unrestorable {
                what: name(p),
                why: "its descriptors could not be read".into(),
            });
            continue;
        };
        let next = tables.len();
        let table = *tables.entry(t).or_insert(next);
        if table == img.tables.len() {
            let fds = snap.tables[t]
                .iter()
                .map(|&e| FdImage {
                    fd: snap.entries[e].fd as u32,
                    file: ids.id_of(snap.file_of[e]),
                    cloexec: snap.entries[e].cloexec,
                })
                .collect();
            img.tables.push(TableImage { id: table, fds });
        }
        let sid = snap.sessions.get(&p.pid).copied();
        let leader = sid.and_then(|s| index.get(&s).copied());
        // A session led by no process of the tree: the one it was started
        // in while that session's leader lives; lost when it has exited.
        // Session 0 is one whose leader lives outside this pid namespace
        // (a tree in a container started from outside it): it cannot be
        // seen, and is taken as the one the tree was started in.
        let gone = leader.is_none()
            && sid.is_some_and(|s| {
                s != 0 && !procfs::stat(s).is_ok_and(|st| st.session == s && st.state != 'Z')
            });
        sessions.push((leader, gone, snap.ctty.get(&p.pid).copied()));
        img.processes.push(ProcImage {
            id: i,
            name: name(p),
            parent: index.get(&p.ppid).copied().filter(|&q| q != i),
            table,
            rlimit: p.rlimit,
            session: None,
            ctty: None,
        });
    }
    let root = sandbox.map(|p| p.to_string_lossy().into_owned());
    let relative = |path: &str| -> String {
        match &root {
            Some(r) if path == r => ".".into(),
            Some(r) => path
                .strip_prefix(&format!("{r}/"))
                .unwrap_or(path)
                .to_string(),
            None => path.to_string(),
        }
    };
    let mut pipes: HashMap<u64, usize> = HashMap::new();
    let mut ptys: HashMap<u32, usize> = HashMap::new();
    let mut pairs: HashMap<u64, usize> = HashMap::new();
    let mut pair_ends: Vec<Vec<u64>> = Vec::new();
    // Listening sockets: their file, and their waiting clients' inodes.
    let mut listeners: Vec<(usize, Vec<u32>)> = Vec::new();
    // Each socket's file, by inode; datagram sockets that send to a peer,
    // and its inode.
    let mut sock_file: HashMap<u32, usize> = HashMap::new();
    let mut sends_to: Vec<(usize, u32)> = Vec::new();
    // Masters of ptys with bytes waiting, listed once the loop is done.
    let mut buffered: Vec<String> = Vec::new();
    let mut k = 0;
    while k < ids.entries.len() {
        let rep = ids.entries[k];
        let e = &snap.entries[rep];
        let whose = format!("file {k} ({})", e.link);
        let mut refuse = |why: &str| {
            img.unrestorable.push(Unrestorable {
                what: whose.clone(),
                why: why.to_string(),
            });
            Object::Other {
                what: e.link.to_string(),
            }
        };
        let object = match snap.file_type(e) {
            FileType::Regular | FileType::Directory if e.link.ends_with(" (deleted)") => {
                refuse("the file was deleted while open; restore opens paths that exist")
            }
            FileType::Regular => Object::Regular {
                path: relative(&e.link),
                offset: e.pos,
            },
            FileType::Directory => Object::Directory {
                path: relative(&e.link),
                offset: e.pos,
            },
            FileType::Chardev => match (e.tty_index, e.pty_index()) {
                (Some(n), _) => {
                    if cap.tty_queued.contains(&n) {
                        buffered.push(whose.clone());
                    }
                    Object::Chardev {
                        path: "/dev/ptmx".into(),
                        pty: Some(pty_number(&mut ptys, n)),
                    }
                }
                (None, Some(n)) => Object::PtySlave {
                    pty: pty_number(&mut ptys, n),
                },
                (None, None) => Object::Chardev {
                    path: e.link.to_string(),
                    pty: None,
                },
            },
            FileType::Pipe => {
                let next = pipes.len();
                let pipe = *pipes.entry(e.ino).or_insert(next);
                if pipe == img.pipes.len() {
                    let (data, capacity) = cap.pipes.get(&e.ino).cloned().unwrap_or_default();
                    img.pipes.push(PipeImage {
                        id: pipe,
                        data: Bytes(data),
                        capacity: Some(capacity).filter(|&c| c != 0 && c != DEFAULT_PIPE_CAPACITY),
                    });
                }
                Object::Pipe {
                    pipe,
                    end: if e.flags & 3 == 1 {
                        PipeEnd::Write
                    } else {
                        PipeEnd::Read
                    },
                }
            }
            FileType::Socket => match snap.sockets.get(&(e.ino as u32)) {
                None => refuse("not a unix socket: network sockets are not restored"),
                Some(s) if SocketSeen::of_diag(s, e.ino as u32, &snap.sockets).unpaired() => {
                    sock_file.insert(e.ino as u32, k);
                    if s.listening() {
                        listeners.push((k, s.icons.clone()));
                    }
                    if s.peer != 0 {
                        sends_to.push((k, s.peer));
                    }
                    Object::Unix {
                        ty: s.sock_type(),
                        name: s.name.as_deref().map(|n| scenario_name(n, root.as_deref())),
                        listen: s.listening().then(|| Listen {
                            backlog: s.wqueue,
                            pending: Vec::new(),
                        }),
                        peer: None,
                        queued: captured_messages(cap, e.ino, &mut ids),
                        shutdown: Shut::from_bits(s.shutdown)
                            .filter(|_| s.sock_type() == SockType::Dgram),
                    }
                }
                Some(s) => {
                    sock_file.insert(e.ino as u32, k);
                    let peer = u64::from(s.peer);
                    if let Some(holders) = cap.outside.get(&peer).filter(|h| !h.is_empty()) {
                        let (pid, fd) = holders[0];
                        img.unrestorable.push(Unrestorable {
                            what: whose.clone(),
                            why: format!("its peer is held outside the tree (pid {pid} fd {fd}); restore would close it"),
                        });
                    }
                    let key = if peer == 0 { e.ino } else { e.ino.min(peer) };
                    let next = pairs.len();
                    let pair = *pairs.entry(key).or_insert(next);
                    if pair == img.pairs.len() {
                        img.pairs.push(PairImage::new(pair, s.sock_type()));
                        pair_ends.push(Vec::new());
                    }
                    let end = pair_ends[pair].len();
                    pair_ends[pair].push(e.ino);
                    img.pairs[pair].names[end] =
                        s.name.as_deref().map(|n| scenario_name(n, root.as_deref()));
                    img.pairs[pair].reset[end] = cap.resets.contains(&e.ino);
                    img.pairs[pair].shutdown[end] = Some(s.shutdown)
                        .filter(|_| peer != 0)
                        .and_then(Shut::from_bits);
                    img.pairs[pair].queued[end] = captured_messages(cap, e.ino, &mut ids);
                    Object::Socket { pair, end }
                }
            },
            FileType::Epoll => {
                let mut registrations = Vec::new();
                for r in snap.epoll.get(&rep).into_iter().flatten() {
                    if fdlab_model::epoll::disabled(Events::from_bits(r.events)) {
                        img.unrestorable.push(Unrestorable {
                            what: format!("{whose}: its registration under {}", r.tfd),
                            why: ONESHOT_FIRED.into(),
                        });
                    }
                    match r.file {
                        Some(f) => registrations.push(Registration {
                            fd: r.tfd as u32,
                            file: ids.id_of(f),
                            events: Events::from_bits(r.events).shown().to_string(),
                        }),
                        None => img.unrestorable.push(Unrestorable {
                            what: format!("{whose}: its registration under {}", r.tfd),
                            why: "the file it watches is held by no process of the tree and is not in flight in it".into(),
                        }),
                    }
                }
                Object::Epoll { registrations }
            }
            FileType::Eventfd => Object::Eventfd {
                count: e.eventfd.map_or(0, |c| c.0),
            },
            _ => refuse("restore does not make this kind of file"),
        };
        img.files.push(FileImage {
            id: k,
            flags: OFlags::from_bits(e.flags).status_string(),
            object,
        });
        k += 1;
    }
    for what in buffered {
        img.unrestorable.push(Unrestorable {
            what,
            why: PTY_BUFFERED.into(),
        });
    }
    // Each listener's waiting connections, by their clients' inodes (the
    // listener's side has none); what a client sent and no one read waits
    // on the other side (its write queue).
    for (file, clients) in listeners {
        let waiting = clients
            .into_iter()
            .map(|c| {
                let pair = pairs.get(&u64::from(c)).copied().filter(|_| c != 0);
                let data = snap.sockets.get(&c).is_some_and(|s| s.wqueue > 0);
                (pair, data)
            })
            .collect();
        add_pending(&mut img, file, waiting);
    }
    link_peers(&mut img, sends_to, &sock_file);
    for f in &cap.failures {
        img.unrestorable.push(Unrestorable {
            what: "the dump".into(),
            why: f.clone(),
        });
    }
    settle_image(&mut img);
    let seen: Vec<SessionSeen> = sessions
        .into_iter()
        .map(|(leader, gone, tty_nr)| SessionSeen {
            leader,
            gone,
            ctty: tty_nr.map(|nr| {
                ptys.iter()
                    .find(|(&n, _)| procfs::pts_tty_nr(n) == nr)
                    .map(|(_, &k)| k)
            }),
        })
        .collect();
    settle_sessions(&mut img, &seen);
    canonical(&img)
}

/// The image of the Linux backend's processes as they are now, by their
/// scenario names, paths under `root` relative to it.
///
/// Errors: the processes could not be read.
pub fn from_backend(
    l: &mut crate::backend::LinuxBackend,
    root: Option<&Path>,
) -> Result<Image, crate::backend::api::BackendError> {
    let procs = l.processes();
    let pids: Vec<i32> = procs.iter().map(|p| p.1).collect();
    let mut cap = l.capture(&pids, l.fds())?;
    // An epoll registration of a file nothing holds is a file the unix
    // collector freed and delayed_fput has not torn down yet (the
    // scenario's processes are the whole world): it goes within a few
    // jiffies; look again until it has.
    for _ in 0..DYING_TRIES {
        let dying = cap
            .snapshot
            .epoll
            .values()
            .flatten()
            .any(|r| r.file.is_none());
        if !dying {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        cap = l.capture(&pids, l.fds())?;
    }
    let name = |p: &CapturedProc| {
        procs
            .iter()
            .find(|(_, pid)| *pid == p.pid)
            .map_or_else(|| format!("{}[{}]", p.comm, p.pid), |(n, _)| n.clone())
    };
    Ok(from_capture(&cap, name, root))
}

/// How many times a scenario's dump looks again for files being torn down
/// (5 ms apart).
const DYING_TRIES: usize = 100;

/// A pipe's capacity unless `F_SETPIPE_SZ` changed it: 16 pages.
pub const DEFAULT_PIPE_CAPACITY: u64 = 65536;

/// `w` once the kernel's deferred work has all run (the collector, a
/// pty's echo), and its garbage is collected: the one state every later
/// moment agrees on.
pub fn settle(w: &World) -> World {
    let mut s = w.clone();
    // Work that never ends is a model bug that its invariants and the
    // timing tests report; the image shows the state it reached.
    let _ = s.run_all_work();
    s.collect_garbage();
    s
}

/// Image ids of the capture's files (representative entries), in the
/// order they are met.
#[derive(Default)]
struct Ids {
    map: HashMap<usize, usize>,
    entries: Vec<usize>,
    model: HashMap<FileId, usize>,
    order: Vec<FileId>,
}

impl Ids {
    /// The id of the world's file `f`.
    fn id(&mut self, f: FileId) -> usize {
        let order = &mut self.order;
        *self.model.entry(f).or_insert_with(|| {
            order.push(f);
            order.len() - 1
        })
    }

    /// The id of the capture's file whose representative entry is `e`.
    fn id_of(&mut self, e: usize) -> usize {
        let entries = &mut self.entries;
        *self.map.entry(e).or_insert_with(|| {
            entries.push(e);
            entries.len() - 1
        })
    }
}

/// `img` with everything numbered in one canonical order, so that two
/// images of the same tree are equal whatever order their dumps met things
/// in: processes by depth and name; tables by their first process; files
/// as met scanning each table's descriptors in order, then the files each
/// file reaches (in flight in its socket's queue, watched by its epoll);
/// pipes and socket pairs by their first file; files nothing reaches
/// left out.
pub fn canonical(img: &Image) -> Image {
    let mut procs: Vec<&ProcImage> = img.processes.iter().collect();
    let depth = |p: &ProcImage| {
        let mut d = 0;
        let mut q = p.parent;
        while let Some(x) = q {
            d += 1;
            q = img.processes.get(x).and_then(|p| p.parent);
        }
        d
    };
    procs.sort_by_key(|p| (depth(p), p.name.clone()));
    let proc_id: HashMap<usize, usize> = procs.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
    let mut table_id: BTreeMap<usize, usize> = BTreeMap::new();
    let mut file_id: HashMap<usize, usize> = HashMap::new();
    let mut file_order: Vec<usize> = Vec::new();
    let mut queue: VecDeque<usize> = VecDeque::new();
    let meet = |f: usize,
                file_id: &mut HashMap<usize, usize>,
                order: &mut Vec<usize>,
                q: &mut VecDeque<usize>| {
        if let std::collections::hash_map::Entry::Vacant(e) = file_id.entry(f) {
            e.insert(order.len());
            order.push(f);
            q.push_back(f);
        }
    };
    let mut tables = Vec::new();
    for p in &procs {
        let next = table_id.len();
        let t = *table_id.entry(p.table).or_insert(next);
        if t == tables.len() {
            let mut fds = img.tables[p.table].fds.clone();
            fds.sort_by_key(|d| d.fd);
            for d in &fds {
                meet(d.file, &mut file_id, &mut file_order, &mut queue);
            }
            tables.push((t, fds));
        }
    }
    // Then what each file reaches, breadth first.
    while let Some(f) = queue.pop_front() {
        match &img.files[f].object {
            Object::Socket { pair, end } => {
                for m in &img.pairs[*pair].queued[*end] {
                    for &g in &m.files {
                        meet(g, &mut file_id, &mut file_order, &mut queue);
                    }
                }
                // The peer's queue too: its file may be held by no one.
                for m in &img.pairs[*pair].queued[1 - *end] {
                    for &g in &m.files {
                        meet(g, &mut file_id, &mut file_order, &mut queue);
                    }
                }
            }
            Object::Epoll { registrations } => {
                let mut regs = registrations.clone();
                regs.sort_by_key(|r| (r.fd, file_id.get(&r.file).copied().unwrap_or(usize::MAX)));
                for r in regs {
                    meet(r.file, &mut file_id, &mut file_order, &mut queue);
                }
            }
            Object::Unix { queued, .. } => {
                for &g in queued.iter().flat_map(|m| &m.files) {
                    meet(g, &mut file_id, &mut file_order, &mut queue);
                }
            }
            _ => {}
        }
    }
    // Files no table, queue or epoll reaches (none in a valid image; the
    // ones `Image::without_unrestorable` cut loose) are left out.
    let mut pipe_id: HashMap<usize, usize> = HashMap::new();
    let mut pair_id: HashMap<usize, usize> = HashMap::new();
    let mut pty_id: HashMap<usize, usize> = HashMap::new();
    for &f in &file_order {
        match img.files[f].object {
            Object::Chardev { pty: Some(t), .. } | Object::PtySlave { pty: t } => {
                pty_number(&mut pty_id, t);
            }
            Object::Pipe { pipe, .. } => {
                let n = pipe_id.len();
                pipe_id.entry(pipe).or_insert(n);
            }
            Object::Socket { pair, .. } => {
                let n = pair_id.len();
                pair_id.entry(pair).or_insert(n);
            }
            _ => {}
        }
    }
    // A pair's end 0 is its end met first (the one there is, when the
    // other is closed): which end `socketpair` returned first cannot be
    // seen from outside.
    let mut first_end: HashMap<usize, usize> = HashMap::new();
    for &f in &file_order {
        if let Object::Socket { pair, end } = img.files[f].object {
            first_end.entry(pair).or_insert(end);
        }
    }
    let flip = |pair: usize| first_end.get(&pair) == Some(&1);
    let mut out = Image::new();
    for (i, p) in procs.iter().enumerate() {
        out.processes.push(ProcImage {
            id: i,
            name: p.name.clone(),
            parent: p.parent.and_then(|x| proc_id.get(&x).copied()),
            table: table_id[&p.table],
            rlimit: p.rlimit,
            session: p.session.and_then(|x| proc_id.get(&x).copied()),
            ctty: p.ctty.and_then(|t| pty_id.get(&t).copied()),
        });
    }
    for (t, fds) in tables {
        out.tables.push(TableImage {
            id: t,
            fds: fds
                .into_iter()
                .map(|d| FdImage {
                    file: file_id[&d.file],
                    ..d
                })
                .collect(),
        });
    }
    for (i, &f) in file_order.iter().enumerate() {
        let old = &img.files[f];
        let object = match &old.object {
            Object::Pipe { pipe, end } => Object::Pipe {
                pipe: pipe_id[pipe],
                end: *end,
            },
            Object::Socket { pair, end } => Object::Socket {
                pair: pair_id[pair],
                end: if flip(*pair) { 1 - *end } else { *end },
            },
            Object::Chardev { path, pty } => Object::Chardev {
                path: path.clone(),
                pty: pty.map(|t| pty_id[&t]),
            },
            Object::PtySlave { pty } => Object::PtySlave { pty: pty_id[pty] },
            Object::Unix {
                ty,
                name,
                listen,
                peer,
                queued,
                shutdown,
            } => Object::Unix {
                ty: *ty,
                name: name.clone(),
                listen: listen.as_ref().map(|l| Listen {
                    backlog: l.backlog,
                    pending: l
                        .pending
                        .iter()
                        .filter_map(|p| pair_id.get(p).copied())
                        .collect(),
                }),
                peer: peer.and_then(|p| file_id.get(&p).copied()),
                queued: queued
                    .iter()
                    .map(|m| Message {
                        data: m.data.clone(),
                        files: m.files.iter().map(|f| file_id[f]).collect(),
                    })
                    .collect(),
                shutdown: *shutdown,
            },
            Object::Epoll { registrations } => {
                let mut regs: Vec<Registration> = registrations
                    .iter()
                    .map(|r| Registration {
                        file: file_id[&r.file],
                        ..r.clone()
                    })
                    .collect();
                regs.sort_by_key(|r| (r.fd, r.file));
                Object::Epoll {
                    registrations: regs,
                }
            }
            other => other.clone(),
        };
        out.files.push(FileImage {
            id: i,
            flags: old.flags.clone(),
            object,
        });
    }
    let mut pipes: Vec<PipeImage> = img
        .pipes
        .iter()
        .filter_map(|p| {
            Some(PipeImage {
                id: *pipe_id.get(&p.id)?,
                data: p.data.clone(),
                capacity: p.capacity,
            })
        })
        .collect();
    pipes.sort_by_key(|p| p.id);
    out.pipes = pipes;
    let mut pairs: Vec<PairImage> = img
        .pairs
        .iter()
        .filter_map(|p| {
            // On a stream, a read takes bytes across sends until it has
            // taken some that carry files: bytes without files belong to
            // the message after them.
            let renumber = |q: &Vec<Message>| -> Vec<Message> {
                let mut out: Vec<Message> = Vec::new();
                let mut open = false;
                for m in q {
                    let files: Vec<usize> = m.files.iter().map(|f| file_id[f]).collect();
                    match out.last_mut() {
                        Some(last) if p.ty == SockType::Stream && open => {
                            last.data.0.extend_from_slice(&m.data.0);
                            last.files = files;
                        }
                        _ => out.push(Message {
                            data: m.data.clone(),
                            files,
                        }),
                    }
                    open = out.last().is_some_and(|l| l.files.is_empty());
                }
                out
            };
            let (a, b) = if flip(p.id) { (1, 0) } else { (0, 1) };
            Some(PairImage {
                id: *pair_id.get(&p.id)?,
                ty: p.ty,
                queued: [renumber(&p.queued[a]), renumber(&p.queued[b])],
                reset: [p.reset[a], p.reset[b]],
                shutdown: [p.shutdown[a], p.shutdown[b]],
                names: [p.names[a].clone(), p.names[b].clone()],
                listener: [a, b].map(|e| p.listener[e].and_then(|l| file_id.get(&l).copied())),
            })
        })
        .collect();
    pairs.sort_by_key(|p| p.id);
    out.pairs = pairs;
    out.unrestorable = img.unrestorable.clone();
    out
}

/// Paths under `sandbox` written relative to it, as scenarios write them
/// (`.` for the sandbox itself).
pub fn relative_paths(img: &mut Image, sandbox: &Path) {
    let root = sandbox.to_string_lossy().into_owned();
    for f in &mut img.files {
        if let Object::Regular { path, .. }
        | Object::Directory { path, .. }
        | Object::Chardev { path, .. } = &mut f.object
        {
            if *path == root {
                *path = ".".into();
            } else if let Some(rest) = path.strip_prefix(&format!("{root}/")) {
                *path = rest.to_string();
            }
        }
    }
}

/// What `fdlab dump` of live processes did.
#[derive(Debug, serde::Serialize)]
pub struct Dumped {
    pub image: Image,
    pub processes: usize,
    pub descriptors: usize,
    pub files: usize,
    /// Files only in flight (no descriptor names them).
    pub in_flight: usize,
    /// What the dump could not read (also in the image's unrestorable).
    pub failures: Vec<String>,
    /// Processes `--freeze` stopped and resumed.
    pub frozen: Option<usize>,
    pub notes: Vec<String>,
}

/// Why a live dump could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error(transparent)]
    Select(#[from] crate::tools::inspect::InspectError),
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
}

/// Dumps the live processes `target` names (processes and their
/// descendants with `Target::Tree`), each named `command[pid]`, paths as
/// they are. With `freeze`, they are stopped while they are read (never
/// this process or its parents) and always resumed.
///
/// Errors: a named process does not exist, freezing failed, the dumper
/// helper could not run.
pub fn live(
    target: &crate::tools::inspect::Target,
    freeze: bool,
    helper: &Path,
) -> Result<Dumped, DumpError> {
    use crate::backend::linux::freeze::Frozen;
    use crate::tools::inspect::{ancestry, select, InspectError};
    let pids = select(target, false)?;
    let mut notes = Vec::new();
    let frozen = if freeze {
        let keep = ancestry();
        let stop: Vec<i32> = pids.iter().copied().filter(|p| !keep.contains(p)).collect();
        for p in pids.iter().filter(|p| keep.contains(p)) {
            notes.push(format!(
                "pid {p}: not frozen (it is this process or one of its parents)"
            ));
        }
        let f =
            Frozen::stop(&stop, std::time::Duration::from_secs(2)).map_err(InspectError::Freeze)?;
        for (p, e) in &f.failed {
            notes.push(format!("pid {p}: could not be frozen: {e}"));
        }
        Some(f)
    } else {
        None
    };
    let mut l = crate::backend::LinuxBackend::new(helper)?;
    let cap = l.capture(&pids, 0..i32::MAX);
    let frozen_count = frozen.as_ref().map(|f| f.stopped.len());
    drop(frozen);
    let cap = cap?;
    let image = from_capture(&cap, |p| format!("{}[{}]", p.comm, p.pid), None);
    let held: BTreeSet<usize> = image
        .tables
        .iter()
        .flat_map(|t| t.fds.iter().map(|d| d.file))
        .collect();
    Ok(Dumped {
        processes: image.processes.len(),
        descriptors: image.tables.iter().map(|t| t.fds.len()).sum(),
        files: image.files.len(),
        in_flight: image.files.len() - held.len(),
        failures: cap.failures.clone(),
        frozen: frozen_count,
        notes,
        image,
    })
}

/// The folder beside an image that holds the files its relative paths
/// name: `IMAGE.files`.
pub fn files_dir(image: &Path) -> std::path::PathBuf {
    let mut name = image.as_os_str().to_os_string();
    name.push(".files");
    std::path::PathBuf::from(name)
}

/// Writes `img` to `path` as pretty JSON (`-`: standard output).
///
/// Errors: the file cannot be written.
pub fn write_image(img: &Image, path: &Path) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(img).map_err(std::io::Error::other)?;
    text.push('\n');
    if path == Path::new("-") {
        use std::io::Write;
        std::io::stdout().write_all(text.as_bytes())
    } else {
        std::fs::write(path, text)
    }
}

/// Copies the files and folders of a scenario's sandbox into `to` (made
/// afresh), so that an image with paths relative to the sandbox can be
/// restored after the sandbox is gone.
///
/// Errors: reading or writing failed.
pub fn save_sandbox(sandbox: &Path, to: &Path) -> std::io::Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(sandbox)? {
        let e = e?;
        let ty = e.file_type()?;
        if ty.is_dir() {
            save_sandbox(&e.path(), &to.join(e.file_name()))?;
        } else if ty.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// Writes the files and folders of the model's file system into `to`
/// (made afresh), as `save_sandbox` does for a real one.
///
/// Errors: writing failed.
pub fn save_model_files(w: &World, to: &Path) -> std::io::Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    std::fs::create_dir_all(to)?;
    let mut entries: Vec<&fdlab_model::vnode::Vnode> = w.fs().entries().collect();
    // Folders before what is in them.
    entries.sort_by_key(|v| v.path.matches('/').count());
    for v in entries {
        let at = to.join(&v.path);
        match &v.kind {
            VnodeKind::Directory => std::fs::create_dir_all(&at)?,
            VnodeKind::Regular(data, _) => std::fs::write(&at, data.read(0, data.size() as usize))?,
            _ => {}
        }
    }
    Ok(())
}
