//! `fdlab bench fork`: what one descriptor adds to a `fork`, in the kernel
//! and in the model, measured side by side in one run, and what a snapshot
//! of the model's world costs.
//!
//! The kernel's cost of a descriptor in `fork` is the copy of its slot and,
//! when the child exits, its close. It cannot be timed alone from user
//! space, so it is the difference between two forks: `fork` + `_exit` +
//! `waitpid` of a process holding `fds` descriptors, less the same of one
//! holding one, divided by `fds - 1`. The model's is measured the same way
//! (its `fork` and the child's `exit`), so the two figures are of the same
//! work. Batches of the two shapes alternate, so that a busy moment of the
//! machine falls on both, and the median batch is reported.
//!
//! The kernel's forks run in a process of their own (this binary, started
//! with a hidden flag): it holds nothing but the descriptors measured, and
//! forking it is safe because it runs one thread.

use std::process::Command;
use std::time::Instant;

use fdlab_model::{Call, OFlags, Pid, World};
use serde::Serialize;

use super::median;
use crate::backend::linux::kernel;

/// Batches of each shape; the median is reported.
const BATCHES: usize = 7;

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ForkBench {
    /// Descriptors held by the loaded process.
    pub fds: u32,
    /// Forks in each batch.
    pub rounds: u32,
    pub kernel: ForkCost,
    pub model: ForkCost,
    /// The model's cost of a descriptor over the kernel's.
    pub ratio: f64,
    /// The model's `fork` alone (its table copy, without the child's
    /// exit): what each descriptor beyond the first adds, in nanoseconds.
    pub model_copy_per_fd_ns: f64,
    /// `World::clone` of the loaded world, in microseconds (median batch).
    pub model_clone_us: f64,
}

/// One side's cost of `fork` + exit + wait.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ForkCost {
    /// Of a process holding one descriptor, in microseconds.
    pub base_us: f64,
    /// Of a process holding `fds`, in microseconds.
    pub loaded_us: f64,
    /// What each descriptor beyond the first adds, in nanoseconds.
    pub per_fd_ns: f64,
}

impl ForkCost {
    fn of(base_us: f64, loaded_us: f64, fds: u32) -> ForkCost {
        ForkCost {
            base_us,
            loaded_us,
            per_fd_ns: (loaded_us - base_us) * 1000.0 / f64::from(fds.saturating_sub(1).max(1)),
        }
    }
}

/// Why the bench could not run.
#[derive(Debug, thiserror::Error)]
pub enum ForkBenchError {
    #[error("the kernel's side could not run: {0}")]
    Kernel(String),
    #[error("the model refused a call: {0}")]
    Model(String),
}

/// Measures `rounds` forks per batch of a process holding `fds`
/// descriptors and of one holding one, in the kernel and in the model.
///
/// Errors: the measuring process could not run, or said something else
/// than its figures.
pub fn fork_bench(fds: u32, rounds: u32) -> Result<ForkBench, ForkBenchError> {
    let exe = std::env::current_exe().map_err(|e| ForkBenchError::Kernel(e.to_string()))?;
    let out = Command::new(exe)
        .args(["bench", "fork", "--kernel-side"])
        .args(["--fds", &fds.to_string(), "--rounds", &rounds.to_string()])
        .output()
        .map_err(|e| ForkBenchError::Kernel(e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let figures: Vec<f64> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [kbase, kloaded] = figures[..] else {
        return Err(ForkBenchError::Kernel(format!(
            "it printed {:?} ({})",
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    };
    let m = model_side(fds, rounds)?;
    let kernel = ForkCost::of(kbase, kloaded, fds);
    let model = ForkCost::of(m.base, m.loaded, fds);
    let copy = ForkCost::of(m.copy_base, m.copy_loaded, fds);
    Ok(ForkBench {
        fds,
        rounds,
        kernel,
        model,
        ratio: model.per_fd_ns / kernel.per_fd_ns,
        model_copy_per_fd_ns: copy.per_fd_ns,
        model_clone_us: m.clone,
    })
}

/// A world whose process `p` holds `n` descriptors: /dev/null and `n - 1`
/// dups of it.
fn world_with(n: u32) -> Result<(World, Pid), ForkBenchError> {
    let err = |e: fdlab_model::Errno| ForkBenchError::Model(e.to_string());
    let mut w = World::new();
    w.set_nr_open(u64::from(n) * 2 + 64);
    let p = w.spawn("p").map_err(err)?;
    w.sys_setrlimit(p, u64::from(n) * 2 + 64).map_err(err)?;
    w.sys_open(p, "/dev/null", OFlags::RDWR, 0).map_err(err)?;
    for _ in 1..n {
        w.sys_dup(p, 0).map_err(err)?;
    }
    Ok((w, p))
}

/// The model's median batches, in microseconds each.
struct ModelSide {
    /// `fork` + `exit`, holding one descriptor and holding `fds`.
    base: f64,
    loaded: f64,
    /// `fork` alone, the same.
    copy_base: f64,
    copy_loaded: f64,
    /// `World::clone` (and its drop) of the world holding `fds`.
    clone: f64,
}

/// Times `rounds` of `fork` + `exit` in `w` as `p`: the whole, and the
/// forks alone, in microseconds a round.
fn model_batch(w: &mut World, p: Pid, rounds: u32) -> Result<(f64, f64), ForkBenchError> {
    let fork = Call::Fork { child: "c".into() };
    let err = |e: fdlab_model::Errno| ForkBenchError::Model(e.to_string());
    let mut copying = std::time::Duration::ZERO;
    let start = Instant::now();
    for _ in 0..rounds {
        let t = Instant::now();
        w.call(p, &fork).map_err(err)?;
        copying += t.elapsed();
        let c = w
            .pid("c")
            .ok_or_else(|| ForkBenchError::Model("no child".into()))?;
        w.call(c, &Call::Exit).map_err(err)?;
    }
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / f64::from(rounds);
    Ok((per(start.elapsed()), per(copying)))
}

/// The model's side of the bench.
fn model_side(fds: u32, rounds: u32) -> Result<ModelSide, ForkBenchError> {
    let (mut base, bp) = world_with(1)?;
    let (mut loaded, lp) = world_with(fds)?;
    let (mut b, mut l, mut cb, mut cl, mut c) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..BATCHES {
        let (whole, copy) = model_batch(&mut base, bp, rounds)?;
        b.push(whole);
        cb.push(copy);
        let (whole, copy) = model_batch(&mut loaded, lp, rounds)?;
        l.push(whole);
        cl.push(copy);
        let start = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(loaded.clone());
        }
        c.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds));
    }
    Ok(ModelSide {
        base: median(b),
        loaded: median(l),
        copy_base: median(cb),
        copy_loaded: median(cl),
        clone: median(c),
    })
}

/// The kernel's side, in the process `fork_bench` starts: prints the
/// median batch of `fork` + `_exit` + `waitpid`, in microseconds a fork,
/// holding one descriptor and holding `fds`.
///
/// Precondition: the process runs one thread (it forks).
///
/// Errors: a call failed.
pub fn kernel_side(fds: u32, rounds: u32) -> Result<(f64, f64), fdlab_model::Errno> {
    kernel::set_nofile(u64::from(fds) + 64)?;
    // What the process holds besides: its standard descriptors. They are
    // in both shapes, so the difference does not see them.
    let null = kernel::open("/dev/null", libc::O_RDWR, 0)?;
    let batch = || -> Result<f64, fdlab_model::Errno> {
        let start = Instant::now();
        for _ in 0..rounds {
            match kernel::fork(false)? {
                0 => kernel::exit_now(0),
                pid => kernel::wait_pid(pid)?,
            };
        }
        Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds))
    };
    let (mut b, mut l) = (Vec::new(), Vec::new());
    for _ in 0..BATCHES {
        b.push(batch()?);
        let mut dups = Vec::with_capacity(fds as usize);
        for _ in 1..fds {
            dups.push(kernel::dup(null)?);
        }
        l.push(batch()?);
        for fd in dups {
            kernel::close(fd)?;
        }
    }
    Ok((median(b), median(l)))
}
