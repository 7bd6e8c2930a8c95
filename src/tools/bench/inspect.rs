//! `fdlab bench inspect`: the reference tree is `processes` processes of
//! `fds` descriptors each, built by a scenario on the Linux backend: the
//! first process opens a fifth of them, and every other process is forked
//! from it, so those are shared by all; then each process opens the same
//! seven tenths of paths separately (the worst case for grouping by a cheap
//! key: every path's key is shared by one open file per process), and dups
//! the last tenth from its own separate opens. A second tree, where no two
//! descriptors share a key, must cost no kcmp call between files.

use std::time::{Duration, Instant};

use fdlab_model::{Call, OFlags};
use serde::Serialize;

use super::{time_tool, ToolRun};
use crate::backend::api::{Backend, BackendError};
use crate::backend::linux::backend::{helper_path, LinuxBackend};
use crate::tools::inspect::{inspect, Filters, InspectCost, Request, Target};

/// The shape of the reference tree.
#[derive(Debug, Clone, Copy)]
pub struct TreeShape {
    pub processes: usize,
    /// Descriptors per process (at most 1000, the scenarios' own limit).
    pub fds: usize,
}

/// What `fdlab bench inspect` measured.
#[derive(Debug, Clone, Serialize)]
pub struct InspectBench {
    pub processes: usize,
    pub descriptors: u64,
    pub files: usize,
    /// Seconds to build the tree.
    pub build_seconds: f64,
    /// Each inspection's cost, in the order run.
    pub runs: Vec<InspectCost>,
    /// The median run.
    pub median: InspectCost,
    /// kcmp calls between files per descriptor, in the median run.
    pub file_kcmp_per_descriptor: f64,
    /// Every kcmp call per descriptor (tables and epolls too).
    pub kcmp_per_descriptor: f64,
    pub all_pairs_per_descriptor: f64,
    /// The tree with no repeated key: its file kcmp calls (0 expected).
    pub unique_tree_descriptors: u64,
    pub unique_tree_file_kcmp: u64,
    pub tools: Vec<ToolRun>,
}

/// Runs a scenario's calls on `b`, failing on the first that fails.
fn call(b: &mut LinuxBackend, p: &str, c: Call) -> Result<(), BackendError> {
    match b.call(p, &c)? {
        Ok(_) => Ok(()),
        Err(e) => Err(BackendError::Process {
            proc: p.to_string(),
            doing: format!("building the tree: {}", c.name()),
            cause: Box::new(e),
        }),
    }
}

/// Builds the reference tree (see the module docs) on a Linux backend.
pub fn reference_tree(shape: TreeShape) -> Result<LinuxBackend, BackendError> {
    let mut b = LinuxBackend::new(&helper_path())?;
    let inherited = shape.fds / 5;
    let separate = shape.fds * 7 / 10;
    let dups = shape.fds - inherited - separate;
    b.spawn("p0", false)?;
    for k in 0..inherited {
        let open = Call::Open {
            path: format!("i{k}"),
            flags: OFlags::RDWR | OFlags::CREAT,
            mode: 0o644,
        };
        call(&mut b, "p0", open)?;
    }
    for n in 1..shape.processes {
        call(
            &mut b,
            "p0",
            Call::Fork {
                child: format!("p{n}"),
            },
        )?;
    }
    for n in 0..shape.processes {
        let p = format!("p{n}");
        for k in 0..separate {
            let flags = if n == 0 {
                OFlags::RDONLY | OFlags::CREAT
            } else {
                OFlags::RDONLY
            };
            let open = Call::Open {
                path: format!("s{k}"),
                flags,
                mode: 0o644,
            };
            call(&mut b, &p, open)?;
        }
        for k in 0..dups {
            let fd = (inherited + k % separate.max(1)) as i32;
            call(&mut b, &p, Call::Dup { fd })?;
        }
    }
    Ok(b)
}

/// A tree where no two descriptors share a key: `processes` processes,
/// each opening `fds` files of its own.
fn unique_tree(processes: usize, fds: usize) -> Result<LinuxBackend, BackendError> {
    let mut b = LinuxBackend::new(&helper_path())?;
    for n in 0..processes {
        let p = format!("u{n}");
        b.spawn(&p, false)?;
        for k in 0..fds {
            let open = Call::Open {
                path: format!("u{n}-{k}"),
                flags: OFlags::RDWR | OFlags::CREAT,
                mode: 0o644,
            };
            call(&mut b, &p, open)?;
        }
    }
    Ok(b)
}

/// The pids of a held tree's processes.
fn pids(b: &LinuxBackend, prefix: &str, n: usize) -> Vec<i32> {
    (0..n)
        .filter_map(|k| b.pid_of(&format!("{prefix}{k}")))
        .collect()
}

/// Builds the trees, inspects the reference one `runs` times, and runs
/// `lsof` and `lsfd` on the same processes in the same run.
///
/// Errors: a tree cannot be built.
pub fn inspect_bench(
    shape: TreeShape,
    runs: usize,
    progress: &dyn Fn(&str),
) -> Result<InspectBench, BackendError> {
    progress(&format!(
        "building {} processes of {} descriptors",
        shape.processes, shape.fds
    ));
    let t = Instant::now();
    let tree = reference_tree(shape)?;
    let build_seconds = t.elapsed().as_secs_f64();
    let pids = pids(&tree, "p", shape.processes);
    let req = Request {
        target: Target::Pids(pids.clone()),
        threads: false,
        freeze: false,
        filters: Filters::default(),
        workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
        delay: Duration::ZERO,
    };
    let mut costs = Vec::new();
    let mut files = 0;
    for k in 0..runs.max(1) {
        progress(&format!("inspecting, run {} of {}", k + 1, runs.max(1)));
        // Only inspection failures from outside can make this fail: the
        // pids were just made.
        let ins = inspect(&req).map_err(|e| BackendError::Process {
            proc: "bench".into(),
            doing: "inspecting the tree".into(),
            cause: Box::new(e),
        })?;
        files = ins.cost.files;
        costs.push(ins.cost);
    }
    let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    progress("running lsof and lsfd on the same processes");
    let tools = vec![
        time_tool(
            "lsof",
            &[
                "-p".to_string(),
                list.join(","),
                "-n".into(),
                "-P".into(),
                "-w".into(),
            ],
        ),
        time_tool("lsfd", &["-p".to_string(), list.join(",")]),
    ];
    drop(tree);
    progress("building and inspecting a tree with no repeated key");
    let (un, uf) = (10, 200.min(shape.fds));
    let unique = unique_tree(un, uf)?;
    let mut r = req.clone();
    r.target = Target::Pids(pids_of_unique(&unique, un));
    let u = inspect(&r).map_err(|e| BackendError::Process {
        proc: "bench".into(),
        doing: "inspecting the tree with no repeated key".into(),
        cause: Box::new(e),
    })?;
    drop(unique);
    let mut sorted = costs.clone();
    sorted.sort_by(|a, b| a.total_ms.total_cmp(&b.total_ms));
    let median = sorted[sorted.len() / 2];
    let n = median.descriptors.max(1) as f64;
    Ok(InspectBench {
        processes: median.processes,
        descriptors: median.descriptors,
        files,
        build_seconds,
        runs: costs,
        file_kcmp_per_descriptor: median.file_kcmp_calls as f64 / n,
        kcmp_per_descriptor: median.kcmp_calls as f64 / n,
        all_pairs_per_descriptor: median.all_pairs as f64 / n,
        median,
        unique_tree_descriptors: u.cost.descriptors,
        unique_tree_file_kcmp: u.cost.file_kcmp_calls,
        tools,
    })
}

fn pids_of_unique(b: &LinuxBackend, n: usize) -> Vec<i32> {
    pids(b, "u", n)
}
