//! `fdlab check`: the corpus of scenarios on every backend, as a table with a
//! column per backend and whether the model and Linux agree.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::backend::{by_name, ModelBackend, ALL};
use crate::compare::run_both;
use crate::lang::{parse, Scenario};
use crate::run::{run, Report};
use crate::Error;

/// One scenario's row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    /// Per backend, in [`ALL`]'s order: `pass`, or the first failure.
    pub results: Vec<(String, String)>,
    /// Whether model and Linux agree step by step and on the topology
    /// (`None` when one of them could not run).
    pub agree: Option<bool>,
    /// The first divergence, when they do not agree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub divergence: Option<String>,
}

impl Row {
    pub fn passed(&self) -> bool {
        self.results.iter().all(|(_, r)| r == "pass") && self.agree != Some(false)
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

fn verdict(r: &Report) -> String {
    match r.failures.first() {
        None => "pass".into(),
        Some(f) => format!("line {}: {}", f.line, f.message),
    }
}

fn check_one(s: &Scenario) -> (Vec<(String, String)>, Option<bool>, Option<String>) {
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
                Err(e) => format!("backend error: {e}"),
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
                        .map(|(n, _)| (n.to_string(), e.clone()))
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

/// The rows as an aligned text table with a summary line.
pub fn render(rows: &[Row]) -> String {
    let w = rows
        .iter()
        .map(|r| r.scenario.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut out = format!("{:<w$}", "scenario");
    for (name, _) in ALL {
        out.push_str(&format!("  {name:<6}"));
    }
    out.push_str("  agree\n");
    let mut notes = Vec::new();
    for r in rows {
        out.push_str(&format!("{:<w$}", r.scenario));
        for (name, res) in &r.results {
            let cell = if res == "pass" { "pass" } else { "FAIL" };
            out.push_str(&format!("  {cell:<6}"));
            if res != "pass" {
                notes.push(format!("{} on {name}: {res}", r.scenario));
            }
        }
        out.push_str(match r.agree {
            Some(true) => "  yes\n",
            Some(false) => "  NO\n",
            None => "  -\n",
        });
        if let Some(d) = &r.divergence {
            notes.push(format!("{} diverges: {d}", r.scenario));
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            out.push_str(&n);
            out.push('\n');
        }
    }
    let failed = rows.iter().filter(|r| !r.passed()).count();
    out.push_str(&format!(
        "\n{} passed, {} failed\n",
        rows.len() - failed,
        failed
    ));
    out
}
