//! Benchmarks of the fd tracker (issue 4's targets in parentheses):
//!
//! - `hit`: `get_fd` + put on an active handle (the lock-free fast path),
//!   beside a 1-byte `pread` on a raw descriptor (target: at most 25 ns, and
//!   at most 0.3x the `pread`). Also through an `Arc` guard.
//! - `miss`: a get that suspends one handle and restores another (capacity
//!   1, two handles used in turn): `lseek` and `close` for the suspension;
//!   `openat`, `fstat`, `ioctl(FS_IOC_GETVERSION)` and `lseek` for the
//!   restore. Beside it, `openat`, `lseek` and `close` of the same file
//!   (target: at most 2x).
//!
//! That every access of the miss loop misses, and that a working set within
//! capacity never reopens, is asserted in `tests/tracker.rs`.
//!
//! Run: `cargo bench --bench tracker`; ratios in one run, since the
//! machines are shared.

use std::hint::black_box;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use fdlab_tracker::{Directory, FdTracker};
use rustix::fs::{Mode, OFlags, SeekFrom};

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("fdlab-bench-tracker-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const FLAGS: OFlags = OFlags::RDWR.union(OFlags::CREATE).union(OFlags::CLOEXEC);

fn hit(c: &mut Criterion) {
    let tmp = TempDir::new("hit");
    std::fs::write(tmp.0.join("f"), b"0123456789").unwrap();
    let tracker = FdTracker::new(tmp.0.join("unlinked"), 4).unwrap();
    let dir = Directory::open(&tmp.0).unwrap();
    let h = Arc::new(
        tracker
            .open(&dir, "f", FLAGS, Mode::RUSR | Mode::WUSR)
            .unwrap(),
    );
    let raw = rustix::fs::open(
        tmp.0.join("f"),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    let mut g = c.benchmark_group("hit");
    g.bench_function("get+put", |b| {
        b.iter(|| {
            let fd = h.get_fd().unwrap();
            black_box(fd.as_raw_fd());
        })
    });
    g.bench_function("get+put (Arc guard)", |b| {
        b.iter(|| {
            let fd = h.get_fd_arc().unwrap();
            black_box(fd.as_raw_fd());
        })
    });
    g.bench_function("pread 1 byte (raw descriptor)", |b| {
        let mut buf = [0u8; 1];
        b.iter(|| black_box(rustix::io::pread(&raw, &mut buf, 3).unwrap()))
    });
    g.finish();
    drop(h);
    tracker.destroy().unwrap();
}

fn miss(c: &mut Criterion) {
    let tmp = TempDir::new("miss");
    for name in ["a", "b"] {
        std::fs::write(tmp.0.join(name), b"0123456789").unwrap();
    }
    let tracker = FdTracker::new(tmp.0.join("unlinked"), 1).unwrap();
    let dir = Directory::open(&tmp.0).unwrap();
    let handles = [
        tracker
            .open(&dir, "a", FLAGS, Mode::RUSR | Mode::WUSR)
            .unwrap(),
        tracker
            .open(&dir, "b", FLAGS, Mode::RUSR | Mode::WUSR)
            .unwrap(),
    ];
    // Leave an offset to save and restore.
    for h in &handles {
        rustix::io::write(h.get_fd().unwrap(), b"x").unwrap();
    }
    let mut g = c.benchmark_group("miss");
    // b is active: start with a, and alternate across every call.
    let mut i = 1;
    g.bench_function("suspend+restore", |b| {
        b.iter(|| {
            i ^= 1;
            let fd = handles[i].get_fd().unwrap();
            black_box(fd.as_raw_fd());
        })
    });
    g.bench_function("openat+lseek+close (raw)", |b| {
        b.iter(|| {
            let fd = rustix::fs::openat(&dir, "a", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
                .unwrap();
            black_box(rustix::fs::seek(&fd, SeekFrom::Start(1)).unwrap());
        })
    });
    g.finish();
    let s = tracker.stats();
    assert_eq!(s.misses, s.uses, "every get of the miss loop missed");
    drop(handles);
    tracker.destroy().unwrap();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = hit, miss
}
criterion_main!(benches);
