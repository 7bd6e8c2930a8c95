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
            for k in 0..runs.max(1) {
                progress(&format!(
                    "restoring the {shape:?} tree ({processes} x {fds}), run {} of {}",
                    k + 1,
                    runs.max(1)
                ));
                all.push(restore_once(&img)?);
            }
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
            out.push(ShapeBench {
                shape,
                processes,
                descriptors: img.tables.iter().map(|t| t.fds.len()).sum(),
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
