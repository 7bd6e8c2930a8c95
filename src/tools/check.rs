//! `fdlab check`: the corpus of scenarios on every backend, as a table with a
//! column per backend and whether the model and Linux agree.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use super::compare::run_both;
use super::error::Error;
use super::run::{run, Report};
use crate::backend::model::ModelBackend;
use crate::backend::registry::{by_name, ALL};
use crate::lang::{parse, Scenario};

/// How one scenario fared on one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every expectation held.
    Pass,
    /// The first expectation that failed.
    Fail { line: usize, message: String },
    /// The scenario could not be read or is not valid.
    Invalid(String),
    /// The backend could not run it.
    Error(String),
}

impl Verdict {
    pub fn passed(&self) -> bool {
        *self == Verdict::Pass
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Pass => f.write_str("pass"),
            Verdict::Fail { line, message } => write!(f, "line {line}: {message}"),
            Verdict::Invalid(e) => f.write_str(e),
            Verdict::Error(e) => write!(f, "backend error: {e}"),
        }
    }
}

/// In JSON a verdict is its text: `pass`, or what went wrong.
impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One scenario's row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    /// Per backend, in [`ALL`]'s order.
    pub results: Vec<(String, Verdict)>,
    /// Whether model and Linux agree step by step and on the topology
    /// (`None` when one of them could not run).
    pub agree: Option<bool>,
    /// The first divergence, when they do not agree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub divergence: Option<String>,
}

impl Row {
    pub fn passed(&self) -> bool {
        self.results.iter().all(|(_, r)| r.passed()) && self.agree != Some(false)
    }
}

/// The `.fds` files in `dir`, sorted by name.
///
/// Errors: the directory cannot be read.
pub fn corpus(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let io = |e| Error::Io {
        path: dir.display().to_string(),
        source: e,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "fds"))
        .collect();
    files.sort();
    Ok(files)
}

fn verdict(r: &Report) -> Verdict {
    match r.failures.first() {
        None => Verdict::Pass,
        Some(f) => Verdict::Fail {
            line: f.line,
            message: f.message.clone(),
        },
    }
}

fn check_one(s: &Scenario) -> (Vec<(String, Verdict)>, Option<bool>, Option<String>) {
    if let Ok(mut linux) = by_name("linux") {
        if let Ok(c) = run_both(s, Box::new(ModelBackend::deferred()), linux.as_mut(), false) {
            let first = c.divergences.first().map(|d| {
                format!(
                    "line {}: {}: model {} / linux {}",
                    d.line, d.what, d.model, d.linux
                )
            });
            return (
                vec![
                    ("model".into(), verdict(&c.model)),
                    ("linux".into(), verdict(&c.linux)),
                ],
                Some(c.divergences.is_empty()),
                first,
            );
        }
    }
    // One side could not run in lockstep: run each alone to say which.
    let results = ALL
        .iter()
        .map(|&(name, make)| {
            let r = match make().and_then(|mut b| run(s, b.as_mut(), false)) {
                Ok(r) => verdict(&r),
                Err(e) => Verdict::Error(e.to_string()),
            };
            (name.to_string(), r)
        })
        .collect();
    (results, None, None)
}

/// Runs every scenario on every backend. A scenario that does not parse, or
/// that a backend cannot run, is a failed row, not an abort.
pub fn check(files: &[PathBuf]) -> Vec<Row> {
    files
        .iter()
        .map(|path| {
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            let parsed = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read: {e}"))
                .and_then(|src| {
                    parse(&path.display().to_string(), &src).map_err(|e| e.to_string())
                });
            match parsed {
                Err(e) => Row {
                    scenario: name,
                    results: ALL
                        .iter()
                        .map(|(n, _)| (n.to_string(), Verdict::Invalid(e.clone())))
                        .collect(),
                    agree: None,
                    divergence: None,
                },
                Ok(s) => {
                    let (results, agree, divergence) = check_one(&s);
                    Row {
                        scenario: name,
                        results,
                        agree,
                        divergence,
                    }
                }
            }
        })
        .collect()
}
