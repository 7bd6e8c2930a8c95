//! `fdlab check`: the corpus of scenarios on every backend, as a table.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::backend::ALL;
use crate::lang::parse;
use crate::run::run;
use crate::Error;

/// One cell of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    pub backend: String,
    pub passed: bool,
    /// `pass`, or the first failure with its line.
    pub result: String,
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

/// Runs every scenario on every backend. A scenario that does not parse, or
/// that a backend cannot run, is a failed row, not an abort.
pub fn check(files: &[PathBuf]) -> Vec<Row> {
    let mut rows = Vec::new();
    for path in files {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let parsed = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read: {e}"))
            .and_then(|src| parse(&path.display().to_string(), &src).map_err(|e| e.to_string()));
        for &(backend, make) in ALL {
            let result = match &parsed {
                Err(e) => Err(e.clone()),
                Ok(s) => match run(s, make().as_mut(), false) {
                    Err(e) => Err(format!("backend error: {e}")),
                    Ok(r) => match r.failures.first() {
                        None => Ok(()),
                        Some(f) => Err(format!("line {}: {}", f.line, f.message)),
                    },
                },
            };
            rows.push(Row {
                scenario: name.clone(),
                backend: backend.to_string(),
                passed: result.is_ok(),
                result: result.err().unwrap_or_else(|| "pass".into()),
            });
        }
    }
    rows
}

/// The rows as an aligned text table with a summary line.
pub fn render(rows: &[Row]) -> String {
    let w = rows
        .iter()
        .map(|r| r.scenario.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut out = format!("{:<w$}  {:<7}  result\n", "scenario", "backend");
    for r in rows {
        out.push_str(&format!(
            "{:<w$}  {:<7}  {}\n",
            r.scenario, r.backend, r.result
        ));
    }
    let failed = rows.iter().filter(|r| !r.passed).count();
    out.push_str(&format!(
        "\n{} passed, {} failed\n",
        rows.len() - failed,
        failed
    ));
    out
}
