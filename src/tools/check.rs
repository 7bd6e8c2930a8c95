//! `fdlab check`: the corpus of scenarios on every backend, as a table with a
//! column per backend and whether the model and Linux agree.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use super::compare::{run_both, timing_dependent};
use super::error::Error;
use super::run::{run, Report};
use crate::backend::model::ModelBackend;
use crate::backend::registry::{by_name, ALL};
use crate::lang::{load, Scenario};

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

/// In JSON a verdict is an object: `{"verdict": "pass"}`, `{"verdict":
/// "fail", "line": 7, "message": ...}`, `{"verdict": "error", "message":
/// ...}`.
impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        match self {
            Verdict::Pass => m.serialize_entry("verdict", "pass")?,
            Verdict::Fail { line, message } => {
                m.serialize_entry("verdict", "fail")?;
                m.serialize_entry("line", line)?;
                m.serialize_entry("message", message)?;
            }
            Verdict::Invalid(e) => {
                m.serialize_entry("verdict", "invalid")?;
                m.serialize_entry("message", e)?;
            }
            Verdict::Error(e) => {
                m.serialize_entry("verdict", "error")?;
                m.serialize_entry("message", e)?;
            }
        }
        m.end()
    }
}

/// One backend's verdict on a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct BackendResult {
    pub backend: String,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// One scenario's row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    /// Why the scenario could not be read or is not valid
    /// (`file:line:col: message`): then no backend ran it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
    /// Per backend, in [`ALL`]'s order.
    pub results: Vec<BackendResult>,
    /// Whether model and Linux agree step by step and on the topology
    /// (`None` when one of them could not run).
    pub agree: Option<bool>,
    /// The first divergence, when they do not agree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub divergence: Option<String>,
}

impl Row {
    pub fn passed(&self) -> bool {
        self.invalid.is_none()
            && self.results.iter().all(|r| r.verdict.passed())
            && self.agree != Some(false)
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

/// The model's verdict, which also fails when an expectation holds only for
/// some timings of Linux's later work (see `timing_dependent`): such a
/// scenario passes on Linux by luck.
fn model_verdict(s: &Scenario, alone: Verdict) -> Verdict {
    if !alone.passed() {
        return alone;
    }
    match timing_dependent(s, Box::new(ModelBackend::deferred())) {
        Ok(None) => alone,
        Ok(Some(f)) => Verdict::Fail {
            line: f.line,
            message: f.message,
        },
        Err(e) => Verdict::Error(e.to_string()),
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
                    ("model".into(), model_verdict(s, verdict(&c.model))),
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
                Ok(r) if name == "model" => model_verdict(s, verdict(&r)),
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
            match load(path) {
                Err(e) => Row {
                    scenario: name,
                    invalid: Some(e.to_string()),
                    results: Vec::new(),
                    agree: None,
                    divergence: None,
                },
                Ok(s) => {
                    let (results, agree, divergence) = check_one(&s);
                    Row {
                        scenario: name,
                        invalid: None,
                        results: results
                            .into_iter()
                            .map(|(backend, verdict)| BackendResult { backend, verdict })
                            .collect(),
                        agree,
                        divergence,
                    }
                }
            }
        })
        .collect()
}
