//! Dumping a tree into an [`Image`]: from the model's world (which knows
//! everything), or from live processes on Linux (what `/proc`, `kcmp`,
//! `tee` and `MSG_PEEK` can tell without disturbing them).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;

use fdlab_model::file::FileKind;
use fdlab_model::vnode::VnodeKind;
use fdlab_model::{FileId, World};

use super::image::{
    Bytes, FdImage, FileImage, Image, Message, Object, PairImage, PipeImage, ProcImage,
    Registration, TableImage, Unrestorable,
};

/// The image of the model's world: every process, table and open file,
/// what is queued in pipes and sockets, files in flight.
///
/// Garbage is collected first, on a copy: files in flight that no process
/// can ever receive (a socket in its own queue, no descriptor left) are the
/// unix collector's to free, at a moment Linux chooses; the image is of the
/// tree as it is once they are gone, the one state every later moment
/// agrees on. (A dump of live processes cannot see into them either.)
pub fn from_model(w: &World) -> Image {
    let mut settled = w.clone();
    settled.collect_garbage();
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
                    cloexec,
                })
                .collect();
            img.tables.push(TableImage { id: t, fds });
        }
        img.processes.push(ProcImage {
            id: img.processes.len(),
            name: name.clone(),
            parent: parent_of(*pid).and_then(|n| index.get(&n).copied()),
            table: t,
            rlimit: Some(p.rlimit),
        });
    }
    // Files, and what they reach: files in flight and epoll targets get
    // ids as they are met.
    let mut pipes: HashMap<fdlab_model::PipeId, usize> = HashMap::new();
    let mut pairs: HashMap<fdlab_model::SockId, usize> = HashMap::new();
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
                    },
                }
            }
            FileKind::PtyMaster(pty) => {
                if !(pty.input.is_empty() && pty.echoed.is_empty() && pty.output.is_empty()) {
                    img.unrestorable.push(Unrestorable {
                        what: format!("file {k} (/dev/ptmx)"),
                        why: "what is buffered in a pseudo-terminal is not dumped; restore opens a new one".into(),
                    });
                }
                Object::Chardev {
                    path: "/dev/ptmx".into(),
                }
            }
            FileKind::Pipe(p, end) => {
                let next = pipes.len();
                let pipe = *pipes.entry(*p).or_insert(next);
                if pipe == img.pipes.len() {
                    img.pipes.push(PipeImage {
                        id: pipe,
                        data: Bytes(w.pipe(*p).contents()),
                    });
                }
                Object::Pipe { pipe, end: *end }
            }
            FileKind::Socket(s, end) => {
                let next = pairs.len();
                let pair = *pairs.entry(*s).or_insert(next);
                if pair == img.pairs.len() {
                    let sp = w.sock(*s);
                    let mut queued: [Vec<Message>; 2] = [Vec::new(), Vec::new()];
                    for (e, q) in queued.iter_mut().enumerate() {
                        for seg in &sp.ends[e].queue {
                            q.push(Message {
                                data: Bytes(seg.data.clone()),
                                files: seg.fds.iter().map(|&g| ids.id(g)).collect(),
                            });
                        }
                    }
                    img.pairs.push(PairImage {
                        id: pair,
                        ty: sp.ty,
                        queued,
                    });
                }
                Object::Socket { pair, end: *end }
            }
            FileKind::Epoll(e) => Object::Epoll {
                registrations: e
                    .interest
                    .iter()
                    .map(|(&(fd, t), ev)| Registration {
                        fd: fd.get(),
                        file: ids.id(t),
                        events: ev.shown().to_string(),
                    })
                    .collect(),
            },
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
    canonical(&img)
}

/// Image ids of the world's files, in the order they are met.
#[derive(Default)]
struct Ids {
    map: HashMap<FileId, usize>,
    order: Vec<FileId>,
}

impl Ids {
    fn id(&mut self, f: FileId) -> usize {
        let order = &mut self.order;
        *self.map.entry(f).or_insert_with(|| {
            order.push(f);
            order.len() - 1
        })
    }
}

/// `img` with everything numbered in one canonical order, so that two
/// images of the same tree are equal whatever order their dumps met things
/// in: processes by depth and name; tables by their first process; files
/// as met scanning each table's descriptors in order, then the files each
/// file reaches (in flight in its socket's queue, watched by its epoll);
/// pipes and socket pairs by their first file.
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
            _ => {}
        }
    }
    // Files no table, queue or epoll reached (an invalid image) keep their
    // order after the rest.
    for f in 0..img.files.len() {
        if let std::collections::hash_map::Entry::Vacant(e) = file_id.entry(f) {
            e.insert(file_order.len());
            file_order.push(f);
        }
    }
    let mut pipe_id: HashMap<usize, usize> = HashMap::new();
    let mut pair_id: HashMap<usize, usize> = HashMap::new();
    for &f in &file_order {
        match img.files[f].object {
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
    let mut out = Image::new();
    for (i, p) in procs.iter().enumerate() {
        out.processes.push(ProcImage {
            id: i,
            name: p.name.clone(),
            parent: p.parent.and_then(|x| proc_id.get(&x).copied()),
            table: table_id[&p.table],
            rlimit: p.rlimit,
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
                end: *end,
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
            })
        })
        .collect();
    pipes.sort_by_key(|p| p.id);
    out.pipes = pipes;
    let mut pairs: Vec<PairImage> = img
        .pairs
        .iter()
        .filter_map(|p| {
            let renumber = |q: &Vec<Message>| -> Vec<Message> {
                q.iter()
                    .map(|m| Message {
                        data: m.data.clone(),
                        files: m.files.iter().map(|f| file_id[f]).collect(),
                    })
                    .collect()
            };
            Some(PairImage {
                id: *pair_id.get(&p.id)?,
                ty: p.ty,
                queued: [renumber(&p.queued[0]), renumber(&p.queued[1])],
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
        | Object::Chardev { path } = &mut f.object
        {
            if *path == root {
                *path = ".".into();
            } else if let Some(rest) = path.strip_prefix(&format!("{root}/")) {
                *path = rest.to_string();
            }
        }
    }
}
