//! Vnodes: the sandbox directory, the regular files in it, and the three
//! devices the language may open.
//!
//! The sandbox has one directory (there is no `mkdir` in version 1 of the
//! language); regular files live until the run ends (there is no `unlink`).
//! File contents are sparse 4 KiB pages in an `imbl::OrdMap`, so a write at a
//! huge offset costs one page, and a snapshot of the world shares every page
//! that the next step does not touch.

use std::collections::BTreeMap;
use std::sync::Arc;

use imbl::OrdMap;

use crate::errno::Errno;
use crate::ids::VnodeId;
use crate::kind::FileType;
use crate::slab::Slab;

const PAGE: usize = 4096;

/// Largest file size and offset on the sandbox's file system: ext4 with
/// 4 KiB blocks (`(2^32 - 1) * 4096`), where the tests run.
pub const MAX_BYTES: u64 = ((1u64 << 32) - 1) * PAGE as u64;

/// The longest name of one path component (Linux `NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// The bytes of a regular file.
#[derive(Debug, Clone, Default)]
pub struct Data {
    pages: OrdMap<u64, Arc<[u8; PAGE]>>,
    size: u64,
}

impl Data {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// `truncate` to zero (O_TRUNC).
    pub fn clear(&mut self) {
        self.pages = OrdMap::new();
        self.size = 0;
    }

    /// Up to `len` bytes at `pos`; holes read as zeros.
    pub fn read(&self, pos: u64, len: usize) -> Vec<u8> {
        let end = self.size.min(pos.saturating_add(len as u64));
        let mut out = Vec::with_capacity(end.saturating_sub(pos) as usize);
        let mut at = pos;
        while at < end {
            let (page, off) = (at / PAGE as u64, (at % PAGE as u64) as usize);
            let n = (PAGE - off).min((end - at) as usize);
            match self.pages.get(&page) {
                Some(p) => out.extend_from_slice(&p[off..off + n]),
                None => out.resize(out.len() + n, 0),
            }
            at += n as u64;
        }
        out
    }

    /// Writes `buf` at `pos`, growing the file; the caller has checked
    /// `pos + buf.len() <= MAX_BYTES`.
    pub fn write(&mut self, pos: u64, buf: &[u8]) {
        let mut at = pos;
        let mut rest = buf;
        while !rest.is_empty() {
            let (page, off) = (at / PAGE as u64, (at % PAGE as u64) as usize);
            let n = (PAGE - off).min(rest.len());
            let p = self
                .pages
                .entry(page)
                .or_insert_with(|| Arc::new([0; PAGE]));
            Arc::make_mut(p)[off..off + n].copy_from_slice(&rest[..n]);
            at += n as u64;
            rest = &rest[n..];
        }
        self.size = self.size.max(at);
    }
}

/// What a vnode is.
#[derive(Debug, Clone)]
pub enum VnodeKind {
    /// A regular file and its permission bits (the owner is whoever runs
    /// the scenario; only the owner bits are ever consulted).
    Regular(Data, u32),
    Directory,
    /// `/dev/null`: reads end at once, writes vanish.
    Null,
    /// `/dev/zero`: reads give zeros, writes vanish.
    Zero,
    /// `/dev/ptmx`: each open makes a new pseudo-terminal.
    Ptmx,
    /// A socket file, made by `bind`: `connect` finds the socket bound to
    /// it (if it is still open); `open` of it is `ENXIO`.
    Socket,
}

/// A vnode and the path it was found under (relative to the sandbox, or the
/// absolute device path).
#[derive(Debug, Clone)]
pub struct Vnode {
    pub path: String,
    pub kind: VnodeKind,
}

impl Vnode {
    /// The kind of file the canonical topology shows.
    pub fn file_type(&self) -> FileType {
        match self.kind {
            VnodeKind::Regular(..) => FileType::Regular,
            VnodeKind::Directory => FileType::Directory,
            VnodeKind::Null | VnodeKind::Zero | VnodeKind::Ptmx => FileType::Chardev,
            VnodeKind::Socket => FileType::Socket,
        }
    }
}

/// The name space: the sandbox directory and the devices.
#[derive(Debug, Clone)]
pub struct Fs {
    pub(crate) vnodes: Slab<Vnode>,
    root: VnodeId,
    entries: BTreeMap<String, VnodeId>,
    devices: BTreeMap<&'static str, VnodeId>,
    /// Files outside the sandbox, by absolute path: what a restore of a
    /// live process's image opens. Scenarios cannot name them (the
    /// language's paths stay in the sandbox).
    outside: BTreeMap<String, VnodeId>,
}

impl Default for Fs {
    fn default() -> Self {
        let mut vnodes = Slab::default();
        let mut add = |path: &str, kind| {
            VnodeId(vnodes.insert(Vnode {
                path: path.to_string(),
                kind,
            }))
        };
        let root = add(".", VnodeKind::Directory);
        let devices = BTreeMap::from([
            ("/dev/null", add("/dev/null", VnodeKind::Null)),
            ("/dev/zero", add("/dev/zero", VnodeKind::Zero)),
            ("/dev/ptmx", add("/dev/ptmx", VnodeKind::Ptmx)),
        ]);
        Fs {
            vnodes,
            root,
            entries: BTreeMap::new(),
            devices,
            outside: BTreeMap::new(),
        }
    }
}

/// The outcome of looking a path up for `open`.
pub enum Lookup {
    Found(VnodeId),
    /// The last component is missing in an existing directory: `open` may
    /// create it under this name.
    Missing(String),
}

impl Fs {
    /// Every file and directory the scenario made, by path.
    pub fn entries(&self) -> impl Iterator<Item = &Vnode> {
        self.entries.values().map(|&v| self.vnode(v))
    }

    pub fn vnode(&self, v: VnodeId) -> &Vnode {
        // Vnodes are never removed (no unlink in version 1), so a VnodeId
        // handed out once stays valid.
        self.vnodes.get(v.0).expect("vnodes are never freed")
    }

    pub fn vnode_mut(&mut self, v: VnodeId) -> &mut Vnode {
        self.vnodes.get_mut(v.0).expect("vnodes are never freed")
    }

    /// Resolves `path` the way `namei` would in the sandbox: every component
    /// but the last must be a directory; `.` and `..` are followed (the parser
    /// has already rejected a `..` that leaves the sandbox); a trailing slash
    /// demands a directory.
    ///
    /// Errors: `ENOENT` (a missing directory, or an empty path), `ENOTDIR`,
    /// `ENAMETOOLONG`.
    pub fn lookup(&self, path: &str) -> Result<Lookup, Errno> {
        if let Some(&dev) = self.devices.get(path) {
            return Ok(Lookup::Found(dev));
        }
        if let Some(&v) = self.outside.get(path) {
            return Ok(Lookup::Found(v));
        }
        if path.is_empty() || path.starts_with('/') {
            return Err(Errno::ENOENT);
        }
        if path.len() >= 4096 {
            return Err(Errno::ENAMETOOLONG);
        }
        let trailing_slash = path.ends_with('/');
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        // The directory we stand in: only the sandbox root exists, so the
        // depth below it is all we need to know.
        let mut depth = 0usize;
        let mut cur: Option<VnodeId> = Some(self.root);
        for (i, comp) in comps.iter().enumerate() {
            if comp.len() > NAME_MAX {
                return Err(Errno::ENAMETOOLONG);
            }
            let dir = match cur {
                Some(d) if matches!(self.vnode(d).kind, VnodeKind::Directory) => d,
                Some(_) => return Err(Errno::ENOTDIR),
                None => return Err(Errno::ENOENT),
            };
            let last = i + 1 == comps.len();
            cur = match *comp {
                "." => Some(dir),
                ".." => {
                    depth = depth.saturating_sub(1);
                    Some(self.root)
                }
                name => {
                    debug_assert_eq!(depth, 0, "only the root directory exists");
                    match self.entries.get(name) {
                        Some(&v) => Some(v),
                        None if last => return Ok(Lookup::Missing(name.to_string())),
                        None => None,
                    }
                }
            };
        }
        match cur {
            Some(v) if trailing_slash && !matches!(self.vnode(v).kind, VnodeKind::Directory) => {
                Err(Errno::ENOTDIR)
            }
            Some(v) => Ok(Lookup::Found(v)),
            None => Err(Errno::ENOENT),
        }
    }

    /// Makes a file (or, with `directory`, a folder) outside the sandbox at
    /// the absolute `path`, for a restore to open; an existing one stays.
    pub fn add_outside(&mut self, path: &str, directory: bool) -> VnodeId {
        if let Some(&v) = self.outside.get(path) {
            return v;
        }
        let kind = if directory {
            VnodeKind::Directory
        } else {
            VnodeKind::Regular(Data::default(), 0o644)
        };
        let v = VnodeId(self.vnodes.insert(Vnode {
            path: path.to_string(),
            kind,
        }));
        self.outside.insert(path.to_string(), v);
        v
    }

    /// Creates an empty regular file named `name` in the sandbox directory,
    /// with permission bits `mode` (helpers run with umask 0).
    pub fn create(&mut self, name: String, mode: u32) -> VnodeId {
        self.make(name, VnodeKind::Regular(Data::default(), mode))
    }

    /// Creates a socket file named `name` in the sandbox directory
    /// (`bind`'s `mknod`).
    pub fn create_socket(&mut self, name: String) -> VnodeId {
        self.make(name, VnodeKind::Socket)
    }

    fn make(&mut self, name: String, kind: VnodeKind) -> VnodeId {
        let v = VnodeId(self.vnodes.insert(Vnode {
            path: name.clone(),
            kind,
        }));
        self.entries.insert(name, v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_data_reads_holes_as_zeros() {
        let mut d = Data::default();
        d.write(3, b"abc");
        assert_eq!(d.read(0, 10), b"\0\0\0abc");
        d.write(1 << 40, b"x");
        assert_eq!(d.size(), (1 << 40) + 1);
        assert_eq!(d.read((1 << 40) - 1, 5), b"\0x");
        d.write(4094, b"span");
        assert_eq!(d.read(4093, 6), b"\0span\0");
    }

    #[test]
    fn lookup_walks_components() {
        let mut fs = Fs::default();
        assert!(matches!(fs.lookup("a"), Ok(Lookup::Missing(n)) if n == "a"));
        fs.create("a".into(), 0o644);
        assert!(matches!(fs.lookup("./a"), Ok(Lookup::Found(_))));
        assert_eq!(fs.lookup("a/b").err(), Some(Errno::ENOTDIR));
        assert_eq!(fs.lookup("a/").err(), Some(Errno::ENOTDIR));
        assert_eq!(fs.lookup("x/b").err(), Some(Errno::ENOENT));
        assert!(matches!(fs.lookup("."), Ok(Lookup::Found(_))));
        assert_eq!(fs.lookup("").err(), Some(Errno::ENOENT));
    }
}
