//! The classic figure of descriptors, as a value the DOT and SVG
//! renderers draw: descriptor tables on the left (each with the processes
//! that use it, one row per descriptor), open files in the middle, the
//! objects they reach on the right (inodes, pipes, socket pairs, epoll
//! instances), an arrow for every reference, dashed arrows from an epoll
//! to the files it watches, and dotted ones from a socket end to the files
//! in flight in its queue (named under it when no table holds them).
//!
//! The layout is a hand-written column layout: files are ordered by the
//! mean height of the rows that point at them, objects by the mean height
//! of their files, which keeps most arrows short and uncrossed.

use std::collections::BTreeMap;

use fdlab_model::kind::FileType;
use fdlab_model::topology::FileView;
use fdlab_model::Topology;

/// One descriptor row of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub fd: u32,
    pub cloexec: bool,
    /// The open file it names (an index into [`Picture::files`]).
    pub file: usize,
}

/// A descriptor table and the processes that use it.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub processes: Vec<String>,
    pub rows: Vec<Row>,
}

/// An open file.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    /// Its id in the topology.
    pub id: usize,
    pub kind: FileType,
    /// `file N: pipe, read end`.
    pub title: String,
    /// `offset 5, O_RDWR`, or empty.
    pub detail: String,
    /// How many table slots name it (a table several processes share
    /// counts once): its count, but for copies in flight.
    pub slots: usize,
    /// The object it reaches (an index into [`Picture::objects`]).
    pub object: usize,
}

/// What open files reach.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub kind: FileType,
    pub label: String,
}

/// An epoll's registration: the epoll's object watches a file under a
/// number.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEdge {
    /// The epoll's object.
    pub epoll: usize,
    /// The file watched (an index into [`Picture::files`]).
    pub file: usize,
    pub fd: u32,
}

/// A file in flight in a socket's queue, which a table holds too.
#[derive(Debug, Clone, PartialEq)]
pub struct FlightEdge {
    /// The socket end whose queue carries it (an index into
    /// [`Picture::files`]).
    pub socket: usize,
    /// The file (an index into [`Picture::files`]).
    pub file: usize,
}

/// The whole figure, in the order it is laid out.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    pub title: String,
    pub tables: Vec<Table>,
    pub files: Vec<File>,
    pub objects: Vec<Object>,
    pub watches: Vec<WatchEdge>,
    /// Watched files that no descriptor names (in flight, or closed).
    pub unheld: Vec<u32>,
    /// Files in flight that a table holds too.
    pub flights: Vec<FlightEdge>,
    /// Files only in flight, by the socket end whose queue carries them:
    /// what each is.
    pub riding: Vec<(usize, Vec<String>)>,
}

fn file_title(v: &FileView) -> (String, String) {
    let mut title = format!("file {}: {}", v.id, v.kind);
    if let Some(e) = v.end {
        title.push_str(&format!(", {e} end"));
    }
    if let Some(t) = v.socket_type {
        title.push_str(&format!(", {t}"));
    }
    let mut detail = Vec::new();
    if let Some(n) = &v.name {
        detail.push(n.clone());
    }
    if v.listening == Some(true) {
        detail.push("listening".to_string());
    }
    if let (Some(o), FileType::Regular | FileType::Directory) = (v.offset, v.kind) {
        detail.push(format!("offset {o}"));
    }
    if let Some(f) = v.flags {
        detail.push(f.status_string());
    }
    (title, detail.join(", "))
}

impl Picture {
    /// The figure of `t`, titled `title`.
    pub fn of(t: &Topology, title: &str) -> Picture {
        let mut tables: Vec<Table> = t
            .tables
            .iter()
            .map(|names| Table {
                processes: names.clone(),
                rows: Vec::new(),
            })
            .collect();
        let mut filled = vec![false; tables.len()];
        let index: BTreeMap<usize, usize> =
            t.files.iter().enumerate().map(|(i, v)| (v.id, i)).collect();
        let mut slots = vec![0usize; t.files.len()];
        for p in &t.processes {
            if filled[p.table] {
                continue;
            }
            for f in &p.fds {
                if let Some(&i) = index.get(&f.file) {
                    slots[i] += 1;
                }
            }
            filled[p.table] = true;
            tables[p.table].rows = p
                .fds
                .iter()
                .filter_map(|f| {
                    Some(Row {
                        fd: f.fd,
                        cloexec: f.cloexec,
                        file: *index.get(&f.file)?,
                    })
                })
                .collect();
        }
        tables.retain(|t| !t.rows.is_empty() || !t.processes.is_empty());
        // Objects: a path is one object however many opens reach it; a
        // pipe or socket by its object number; anything else alone.
        let mut keys: BTreeMap<(u8, String), usize> = BTreeMap::new();
        let mut objects: Vec<Object> = Vec::new();
        let mut files = Vec::new();
        for (i, v) in t.files.iter().enumerate() {
            let (key, label) = match (v.kind, v.object, &v.path) {
                (FileType::Pipe, Some(o), _) => ((0, o.to_string()), format!("pipe {o}")),
                (FileType::Socket, Some(o), _) => {
                    // A connected pair shares its object; a named socket
                    // that is not connected has one of its own.
                    let ends = t
                        .files
                        .iter()
                        .filter(|f| f.kind == FileType::Socket && f.object == Some(o))
                        .count();
                    let what = if ends > 1 { "socket pair" } else { "socket" };
                    ((1, o.to_string()), format!("{what} {o}"))
                }
                (FileType::Epoll, _, _) => (
                    (2, i.to_string()),
                    format!("epoll instance of file {}", v.id),
                ),
                (FileType::Eventfd, _, _) => ((3, i.to_string()), "eventfd counter".to_string()),
                (_, _, Some(p)) => ((4, p.clone()), p.clone()),
                _ => ((5, i.to_string()), v.kind.to_string()),
            };
            let o = *keys.entry(key).or_insert_with(|| {
                objects.push(Object {
                    kind: v.kind,
                    label,
                });
                objects.len() - 1
            });
            let (title, detail) = file_title(v);
            files.push(File {
                id: v.id,
                kind: v.kind,
                title,
                detail,
                slots: slots[i],
                object: o,
            });
        }
        let mut watches = Vec::new();
        let mut unheld = Vec::new();
        for (i, v) in t.files.iter().enumerate() {
            for tg in v.targets.iter().flatten() {
                match tg.file.and_then(|f| index.get(&f)) {
                    Some(&target) => watches.push(WatchEdge {
                        epoll: files[i].object,
                        file: target,
                        fd: tg.fd,
                    }),
                    None => unheld.push(tg.fd),
                }
            }
        }
        Picture {
            title: title.to_string(),
            tables,
            files,
            objects,
            watches,
            unheld,
            flights: Vec::new(),
            riding: Vec::new(),
        }
    }

    /// The figure with the files in flight in its sockets' queues (by the
    /// topology's file ids; a socket the picture does not show is left
    /// out).
    pub fn with_flights(mut self, flights: &[crate::tools::run::Flight]) -> Picture {
        let index: BTreeMap<usize, usize> = self
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.id, i))
            .collect();
        for fl in flights {
            let Some(&socket) = index.get(&fl.socket) else {
                continue;
            };
            for f in &fl.files {
                if let Some(&file) = index.get(f) {
                    self.flights.push(FlightEdge { socket, file });
                }
            }
            if !fl.unheld.is_empty() {
                self.riding.push((socket, fl.unheld.clone()));
            }
        }
        self
    }
}

/// Where each box of a picture goes (in an SVG's units).
#[derive(Debug, Clone)]
pub struct Layout {
    pub width: f64,
    pub height: f64,
    /// Each table's top left corner and height.
    pub tables: Vec<(f64, f64, f64)>,
    /// Each file's top left corner.
    pub files: Vec<(f64, f64)>,
    /// Each object's top left corner.
    pub objects: Vec<(f64, f64)>,
}

pub const TABLE_X: f64 = 20.0;
pub const TABLE_W: f64 = 190.0;
pub const ROW_H: f64 = 22.0;
pub const HEAD_LINE: f64 = 18.0;
pub const FILE_X: f64 = 300.0;
pub const FILE_W: f64 = 290.0;
pub const FILE_H: f64 = 42.0;
pub const OBJ_X: f64 = 690.0;
pub const OBJ_W: f64 = 230.0;
pub const OBJ_H: f64 = 30.0;
pub const GAP: f64 = 14.0;
pub const TOP: f64 = 50.0;

impl Layout {
    /// The column layout of `p`.
    pub fn of(p: &Picture) -> Layout {
        let mut y = TOP;
        let mut tables = Vec::new();
        let mut row_y: Vec<Vec<f64>> = vec![Vec::new(); p.files.len()];
        for t in &p.tables {
            let head = HEAD_LINE * t.processes.len().max(1) as f64 + 8.0;
            let h = head + ROW_H * t.rows.len() as f64;
            tables.push((TABLE_X, y, h));
            for (k, r) in t.rows.iter().enumerate() {
                row_y[r.file].push(y + head + ROW_H * (k as f64 + 0.5));
            }
            y += h + GAP;
        }
        let left_bottom = y;
        // Files by the mean height of the rows naming them; files no row
        // names (watched only) go last.
        let mean = |v: &[f64]| {
            if v.is_empty() {
                f64::INFINITY
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        let mut order: Vec<usize> = (0..p.files.len()).collect();
        order.sort_by(|&a, &b| mean(&row_y[a]).total_cmp(&mean(&row_y[b])).then(a.cmp(&b)));
        let mut files = vec![(FILE_X, 0.0); p.files.len()];
        let mut fy = TOP;
        for &f in &order {
            // As near the rows as the files above allow.
            let want = mean(&row_y[f]);
            let want = if want.is_finite() {
                want - FILE_H / 2.0
            } else {
                fy
            };
            fy = fy.max(want);
            files[f] = (FILE_X, fy);
            fy += FILE_H + GAP;
        }
        let mut file_y: Vec<Vec<f64>> = vec![Vec::new(); p.objects.len()];
        for (i, f) in p.files.iter().enumerate() {
            file_y[f.object].push(files[i].1 + FILE_H / 2.0);
        }
        let mut oorder: Vec<usize> = (0..p.objects.len()).collect();
        oorder.sort_by(|&a, &b| {
            mean(&file_y[a])
                .total_cmp(&mean(&file_y[b]))
                .then(a.cmp(&b))
        });
        let mut objects = vec![(OBJ_X, 0.0); p.objects.len()];
        let mut oy = TOP;
        for &o in &oorder {
            let want = mean(&file_y[o]);
            let want = if want.is_finite() {
                want - OBJ_H / 2.0
            } else {
                oy
            };
            oy = oy.max(want);
            objects[o] = (OBJ_X, oy);
            oy += OBJ_H + GAP;
        }
        let height = left_bottom.max(fy).max(oy) + 30.0;
        Layout {
            width: OBJ_X + OBJ_W + 30.0,
            height,
            tables,
            files,
            objects,
        }
    }
}
