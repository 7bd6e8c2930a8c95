//! Benchmarks of the model's descriptor table (issue figures in parentheses):
//!
//! - `lookup`: `fd_getfile` + FREF + FRELE, beside a raw `Vec<Option<Arc<_>>>`
//!   index + `Arc` clone/drop (target: at most 2.5x the raw figure).
//! - `alloc`: falloc + fdinsert + FRELE + fdrelease with 16, 1,024 and
//!   1,048,576 descriptors open (target: the 1M case at most 1.5x the 16
//!   case), and the adversarial case where a low hole is reused so the next
//!   allocation searches to the top, beside a flat linear scan (target: at
//!   least 25x faster).
//! - `fork`: the table copy of a 1,024-descriptor table.
//! - `snapshot`: `World::clone`, the deep copy `--trace` and the comparison
//!   with Linux make of the whole state (every file and table rebuilt).
//!
//! The tables are the concurrent ones of `fdlab_model::mt`, which the
//! world runs on; `benches/concurrent.rs` measures them directly.
//!
//! Run: `cargo bench --bench model`; ratios in one run, since the machines
//! are shared.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use fdlab_model::{Call, Fd, OFlags, Pid, World};

/// A world with one process holding `n` descriptors: /dev/null at 0 and
/// `n - 1` dups of it (one open file, so the setup is quick).
fn world_with(n: u32) -> (World, Pid) {
    let mut w = World::new();
    w.set_nr_open(u64::from(n) * 2 + 64);
    let p = w.spawn("p").unwrap();
    w.sys_setrlimit(p, u64::from(n) * 2 + 64).unwrap();
    w.sys_open(p, "/dev/null", OFlags::RDWR, 0).unwrap();
    for _ in 1..n {
        w.sys_dup(p, 0).unwrap();
    }
    (w, p)
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup");
    let (mut w, p) = world_with(1024);
    g.bench_function("fd_getfile+FREF+FRELE", |b| {
        let mut fd = 0u32;
        b.iter(|| {
            fd = (fd + 7) & 1023;
            let fp = w.fd_getfile(p, Fd::new(fd)).unwrap();
            black_box(fp.id());
        })
    });
    let raw: Vec<Option<Arc<u64>>> = (0..1024).map(|i| Some(Arc::new(i))).collect();
    g.bench_function("raw Vec<Option<Arc>> + clone/drop", |b| {
        let mut fd = 0usize;
        b.iter(|| {
            fd = (fd + 7) & 1023;
            let a = raw[black_box(fd)].clone().unwrap();
            black_box(&a);
        })
    });
    g.finish();
}

/// One open/close cycle through the file(9) API; returns the fd it used.
fn open_close(w: &mut World, p: Pid) -> Fd {
    let l = w.falloc(p).unwrap();
    let fd = l.fd();
    let h = w.fdinsert(l, false);
    w.frele(h);
    w.fdrelease(p, fd).unwrap();
    fd
}

/// The flat alternative: slots scanned from 0 for the lowest free one.
struct FlatTable {
    slots: Vec<Option<u32>>,
}

impl FlatTable {
    fn alloc(&mut self) -> usize {
        match self.slots.iter().position(Option::is_none) {
            Some(i) => {
                self.slots[i] = Some(1);
                i
            }
            None => {
                self.slots.push(Some(1));
                self.slots.len() - 1
            }
        }
    }
}

fn alloc(c: &mut Criterion) {
    let mut g = c.benchmark_group("alloc");
    for n in [16u32, 1024, 1 << 20] {
        let (mut w, p) = world_with(n);
        g.bench_function(format!("falloc+fdrelease/{n} open"), |b| {
            b.iter(|| black_box(open_close(&mut w, p)))
        });
    }
    // Adversarial: close a low descriptor (the hint drops to it), reuse it,
    // then allocate again: the search must climb to the top of 2^20.
    let n = 1u32 << 20;
    let (mut w, p) = world_with(n);
    g.bench_function("adversarial/bitmap 1048576 open", |b| {
        b.iter(|| {
            w.fdrelease(p, Fd::new(5)).unwrap();
            let low = w.falloc(p).unwrap();
            assert_eq!(low.fd(), Fd::new(5));
            let h = w.fdinsert(low, false);
            w.frele(h);
            black_box(open_close(&mut w, p))
        })
    });
    let mut flat = FlatTable {
        slots: vec![Some(1); n as usize],
    };
    g.bench_function("adversarial/flat scan 1048576 open", |b| {
        b.iter(|| {
            flat.slots[5] = None;
            assert_eq!(flat.alloc(), 5);
            let top = flat.alloc();
            flat.slots[top] = None;
            black_box(top)
        })
    });
    g.finish();
}

fn fork(c: &mut Criterion) {
    let mut g = c.benchmark_group("fork");
    let (w, p) = world_with(1024);
    g.bench_function("fdcopy of 1024 descriptors", |b| {
        b.iter_batched_ref(
            || w.clone(),
            |w| black_box(w.call(p, &Call::Fork { child: "c".into() }).unwrap()),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn snapshot(c: &mut Criterion) {
    let mut g = c.benchmark_group("snapshot");
    let (w, _) = world_with(1024);
    g.bench_function("World::clone with 1024 descriptors", |b| {
        b.iter(|| black_box(w.clone()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = lookup, alloc, fork, snapshot
}
criterion_main!(benches);
