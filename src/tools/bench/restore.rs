//! `fdlab bench restore`: restores images of two reference trees on real
//! processes and times it end to end (making the processes, serving the
//! files, placing them), without verification.
//!
//! - *shared*: `processes` processes (10 by default) of `fds` descriptors,
//!   all opened by the first and shared by fork with the others: every
//!   file is made once and served to every other process.
//! - *mixed*: `processes` processes (100 by default) of `fds` descriptors:
//!   a fifth inherited from the first process, three fifths separate opens
//!   of the same paths in every process, a tenth dups of those, and a
//!   tenth ends of pipes of its own with bytes queued in them.
//!
//! Beside each restore, in the same run, the *floor*: the system calls no
//! restore of that tree can avoid, made by a program that does nothing
//! else. One process opens the inherited files and forks the others;
//! every process (at once, on every core) opens its separate files, makes
//! its dups and its pipes and writes their bytes, and says it is done.
//! Nothing is placed at a number, sent, planned or checked: a restore
//! cannot be faster than that, so the floor bounds the descriptors a
//! second any restore of the tree can reach on this machine.
//!
//! With `--criu SCRIPT`, the script is run in the same run for the shared
//! shape (`SCRIPT shared PROCESSES FDS` builds such a tree, dumps it with
//! CRIU, restores it, and prints the restore's wall time in seconds), so
//! the two are measured side by side.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use fdlab_model::pipe::PipeEnd;
use serde::Serialize;

use crate::backend::linux::backend::{helper_path, LinuxBackend};
use crate::tools::image::{
    Bytes, FdImage, FileImage, Image, Object, PipeImage, ProcImage, TableImage,
};
use crate::tools::restore::{numbers, restore, Options, RestoreError};

/// Which reference tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    Shared,
    Mixed,
}

/// Paths the trees open, made in the bench's folder.
const PATHS: usize = 16;

/// The image of a reference tree whose files are in `dir`.
pub fn tree(shape: Shape, processes: usize, fds: usize, dir: &Path) -> Image {
    let mut img = Image::new();
    let path = |k: usize| dir.join(format!("f{}", k % PATHS)).display().to_string();
    let open = |img: &mut Image, k: usize| {
        let id = img.files.len();
        img.files.push(FileImage {
            id,
            flags: if k.is_multiple_of(2) {
                "O_RDONLY"
            } else {
                "O_RDWR"
            }
            .into(),
            object: Object::Regular {
                path: path(k),
                offset: 0,
            },
        });
        id
    };
    let inherited = match shape {
        Shape::Shared => fds,
        Shape::Mixed => fds / 5,
    };
    let shared: Vec<usize> = (0..inherited).map(|k| open(&mut img, k)).collect();
    for n in 0..processes {
        let mut table: Vec<FdImage> = shared
            .iter()
            .enumerate()
            .map(|(fd, &file)| FdImage {
                fd: fd as u32,
                file,
                cloexec: false,
            })
            .collect();
        if shape == Shape::Mixed {
            let separate = fds * 3 / 5;
            let dups = fds / 10;
            let pipe_fds = fds - inherited - separate - dups;
            let mut own = Vec::new();
            for k in 0..separate {
                own.push(open(&mut img, k));
            }
            for &file in &own {
                let fd = table.len() as u32;
                table.push(FdImage {
                    fd,
                    file,
                    cloexec: false,
                });
            }
            for k in 0..dups {
                let fd = table.len() as u32;
                table.push(FdImage {
                    fd,
                    file: own[k % own.len().max(1)],
                    cloexec: k.is_multiple_of(3),
                });
            }
            for k in 0..pipe_fds {
                let pipe = img.pipes.len() - usize::from(!k.is_multiple_of(2));
                if k.is_multiple_of(2) {
                    img.pipes.push(PipeImage {
                        id: pipe,
                        data: Bytes(format!("pipe {pipe}").into_bytes()),
                        capacity: None,
                    });
                }
                let id = img.files.len();
                let end = if k.is_multiple_of(2) {
                    PipeEnd::Read
                } else {
                    PipeEnd::Write
                };
                img.files.push(FileImage::pipe_end(id, pipe, end));
                let fd = table.len() as u32;
                table.push(FdImage {
                    fd,
                    file: id,
                    cloexec: false,
                });
            }
        }
        img.tables.push(TableImage { id: n, fds: table });
        img.processes.push(ProcImage {
            id: n,
            name: format!("p{n}"),
            parent: (n > 0).then_some(0),
            table: n,
            rlimit: None,
            session: None,
            ctty: None,
        });
    }
    img
}

/// One restore's figures.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreRun {
    pub seconds: f64,
    /// Of which: validating and planning; making the processes and the
    /// transport; running the programs.
    pub plan_seconds: f64,
    pub make_seconds: f64,
    pub programs_seconds: f64,
    pub descriptors_per_second: f64,
    pub messages: u64,
    pub files_sent: u64,
    pub descriptors_per_message: f64,
}

/// One tree's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ShapeBench {
    pub shape: Shape,
    pub processes: usize,
    pub descriptors: usize,
    pub files: usize,
    pub runs: Vec<RestoreRun>,
    /// The run with the median time.
    pub median: RestoreRun,
    /// CRIU's restore of the same shape, seconds per run, when asked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub criu_seconds: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub criu_error: Option<String>,
    /// The floor (see the module docs): seconds, median of the runs.
    pub floor_seconds: f64,
    /// The descriptors a second the floor makes.
    pub floor_descriptors_per_second: f64,
}

/// What `fdlab bench restore` measured.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreBench {
    pub shapes: Vec<ShapeBench>,
}

/// Why the bench could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    #[error("the floor could not be measured: {0}")]
    Floor(String),
    #[error("interrupted")]
    Interrupted,
}

/// Runs the floor of `shape` in a process of its own (this binary with a
/// hidden flag: [`floor_side`]), and returns its seconds.
fn floor_run(shape: Shape, processes: usize, fds: usize, dir: &Path) -> Result<f64, BenchError> {
    let exe = std::env::current_exe().map_err(|e| BenchError::Floor(e.to_string()))?;
    let out = Command::new(exe)
        .args(["bench", "restore", "--floor-side"])
        .arg(match shape {
            Shape::Shared => "shared",
            Shape::Mixed => "mixed",
        })
        .args([&processes.to_string(), &fds.to_string()])
        .arg(dir)
        .output()
        .map_err(|e| BenchError::Floor(e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().map_err(|_| {
        BenchError::Floor(format!(
            "it printed {:?} ({})",
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    })
}

/// The floor of `shape` (see the module docs), with the paths of `dir`:
/// its wall time in seconds, from the first open until every process has
/// all its descriptors.
///
/// Precondition: the process runs one thread (it forks).
///
/// Errors: a call failed.
pub fn floor_side(
    shape: Shape,
    processes: usize,
    fds: usize,
    dir: &Path,
) -> Result<f64, rustix::io::Errno> {
    use crate::backend::linux::kernel;
    use rustix::fs::{Mode, OFlags};
    use std::os::fd::{AsRawFd, OwnedFd};
    let raw = |e: fdlab_model::Errno| rustix::io::Errno::from_raw_os_error(e as i32);
    kernel::set_nofile(fds as u64 + 64).map_err(raw)?;
    let path = |k: usize| dir.join(format!("f{}", k % PATHS));
    let open = |k: usize| {
        let flags = if k.is_multiple_of(2) {
            OFlags::RDONLY
        } else {
            OFlags::RDWR
        };
        rustix::fs::open(path(k), flags, Mode::empty())
    };
    let (inherited, separate, dups) = match shape {
        Shape::Shared => (fds, 0, 0),
        Shape::Mixed => (fds / 5, fds * 3 / 5, fds / 10),
    };
    let pipe_fds = fds - inherited - separate - dups;
    // One process's own descriptors, kept until it is told to go.
    let own = || -> Result<Vec<OwnedFd>, rustix::io::Errno> {
        let mut held = Vec::with_capacity(fds);
        for k in 0..separate {
            held.push(open(k)?);
        }
        for k in 0..dups {
            held.push(rustix::io::dup(&held[k % separate.max(1)])?);
        }
        for k in 0..pipe_fds.div_ceil(2) {
            let (r, w) = rustix::pipe::pipe()?;
            rustix::io::write(&w, format!("pipe {k}").as_bytes())?;
            held.push(r);
            held.push(w);
        }
        Ok(held)
    };
    let (done_r, done_w) = rustix::pipe::pipe()?;
    let (go_r, go_w) = rustix::pipe::pipe()?;
    let start = Instant::now();
    let mut held = Vec::with_capacity(inherited);
    for k in 0..inherited {
        held.push(open(k)?);
    }
    let mut children = Vec::new();
    for _ in 1..processes {
        match kernel::fork(false).map_err(raw)? {
            0 => {
                // The child: its own descriptors, then "done", then it
                // waits for the end of `go`, which comes when the parent
                // closes the last other copy of its write end. (The
                // child never runs destructors: it ends with `_exit`.)
                let _ = kernel::close(go_w.as_raw_fd());
                // One byte whatever happened, so that the parent never
                // waits for a child that failed.
                let ok = own().is_ok();
                let _ = rustix::io::write(&done_w, if ok { b"x" } else { b"!" });
                let _ = rustix::io::read(&go_r, &mut [0u8; 1]);
                kernel::exit_now(if ok { 0 } else { 1 })
            }
            pid => children.push(pid),
        }
    }
    let mine = own();
    let (mut done, mut failed) = (0, false);
    let mut buf = [0u8; 64];
    while done < children.len() {
        match rustix::io::read(&done_r, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                failed |= buf[..n].contains(&b'!');
                done += n;
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    drop(go_w);
    failed |= done < children.len();
    for pid in children {
        let status = kernel::wait_pid(pid).map_err(raw)?;
        failed |= status != 0;
    }
    let mine = mine?;
    drop((mine, held));
    if failed {
        return Err(rustix::io::Errno::IO);
    }
    Ok(seconds)
}

/// Restores `img` once on fresh helpers, and times it.
fn restore_once(img: &Image) -> Result<RestoreRun, RestoreError> {
    let (floor, _) = numbers(img);
    let mut l = LinuxBackend::with_floor(&helper_path(), floor)?;
    let start = Instant::now();
    let r = restore(img, &mut l, &Options::default())?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(RestoreRun {
        seconds,
        plan_seconds: r.plan_seconds,
        make_seconds: r.make_seconds,
        programs_seconds: r.programs_seconds,
        descriptors_per_second: r.descriptors as f64 / seconds,
        messages: r.messages,
        files_sent: r.files_sent,
        descriptors_per_message: if r.messages == 0 {
            0.0
        } else {
            r.files_sent as f64 / r.messages as f64
        },
    })
}

/// Runs `criu` (a script, see the module docs) `runs` times.
fn criu_runs(script: &Path, processes: usize, fds: usize, runs: usize) -> Result<Vec<f64>, String> {
    let mut out = Vec::new();
    for _ in 0..runs {
        let o = Command::new(script)
            .args(["shared", &processes.to_string(), &fds.to_string()])
            .output()
            .map_err(|e| format!("{}: {e}", script.display()))?;
        let text = String::from_utf8_lossy(&o.stdout);
        let last = text.lines().last().unwrap_or("").trim().to_string();
        match (o.status.success(), last.parse::<f64>()) {
            (true, Ok(s)) => out.push(s),
            _ => {
                return Err(format!(
                    "{} failed: {}",
                    script.display(),
                    String::from_utf8_lossy(&o.stderr)
                        .lines()
                        .last()
                        .unwrap_or(&last)
                ))
            }
        }
    }
    Ok(out)
}

/// Restores each shape `runs` times, the CRIU script beside the shared
/// one when given.
///
/// Errors: the files could not be made, a restore failed.
pub fn restore_bench(
    shapes: &[(Shape, usize, usize)],
    runs: usize,
    criu: Option<&Path>,
    progress: &dyn Fn(&str),
) -> Result<RestoreBench, BenchError> {
    let dir = std::env::temp_dir().join(format!("fdlab-bench-restore-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::Io(dir.clone(), e))?;
    let result = (|| {
        for k in 0..PATHS {
            let p = dir.join(format!("f{k}"));
            std::fs::write(&p, b"bench").map_err(|e| BenchError::Io(p, e))?;
        }
        let mut out = Vec::new();
        for &(shape, processes, fds) in shapes {
            let img = tree(shape, processes, fds, &dir);
            let mut all = Vec::new();
            let mut floors = Vec::new();
            for k in 0..runs.max(1) {
                if crate::backend::linux::kernel::interrupted() {
                    return Err(BenchError::Interrupted);
                }
                progress(&format!(
                    "restoring the {shape:?} tree ({processes} x {fds}), run {} of {}",
                    k + 1,
                    runs.max(1)
                ));
                all.push(restore_once(&img)?);
                floors.push(floor_run(shape, processes, fds, &dir)?);
            }
            let floor_seconds = super::median(floors);
            let mut sorted = all.clone();
            sorted.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
            let median = sorted[sorted.len() / 2].clone();
            let (criu_seconds, criu_error) = match (shape, criu) {
                (Shape::Shared, Some(script)) => {
                    progress("running CRIU on the same shape");
                    match criu_runs(script, processes, fds, runs.max(1)) {
                        Ok(v) => (v, None),
                        Err(e) => (Vec::new(), Some(e)),
                    }
                }
                _ => (Vec::new(), None),
            };
            let descriptors: usize = img.tables.iter().map(|t| t.fds.len()).sum();
            out.push(ShapeBench {
                shape,
                processes,
                descriptors,
                floor_seconds,
                floor_descriptors_per_second: descriptors as f64 / floor_seconds,
                files: img.files.len(),
                runs: all,
                median,
                criu_seconds,
                criu_error,
            });
        }
        Ok(RestoreBench { shapes: out })
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
