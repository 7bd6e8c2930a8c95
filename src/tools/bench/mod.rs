//! `fdlab bench`: the figures the issues name, measured on trees this
//! command builds itself, beside the outside tools that do the same job,
//! in one run (the machines are shared and noisy: ratios measured side by
//! side are what to report). `inspect` times `fdlab inspect` beside `lsof`
//! and `lsfd`; `restore` times `fdlab restore` beside CRIU.

use std::process::Command;
use std::time::Instant;

use serde::Serialize;

pub mod fork;
pub mod inspect;
pub mod restore;

pub use inspect::{inspect_bench, reference_tree, InspectBench, TreeShape};

/// The median of `v` (the upper one of an even count). Precondition: `v`
/// is not empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One outside tool's run on the same processes.
#[derive(Debug, Clone, Serialize)]
pub struct ToolRun {
    pub tool: String,
    /// `None` when the tool is not installed.
    pub seconds: Option<f64>,
    /// Lines it printed (a measure of what it covered).
    pub lines: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs `program args` and times it, if it is installed.
fn time_tool(program: &str, args: &[String]) -> ToolRun {
    let start = Instant::now();
    match Command::new(program).args(args).output() {
        Ok(out) => ToolRun {
            tool: format!("{program} {}", args.first().map_or("", |a| a.as_str())),
            seconds: Some(start.elapsed().as_secs_f64()),
            lines: out.stdout.split(|&b| b == b'\n').count().saturating_sub(1),
            error: (!out.status.success()).then(|| {
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            }),
        },
        Err(e) => ToolRun {
            tool: program.to_string(),
            seconds: None,
            lines: 0,
            error: Some(format!("not run: {e}")),
        },
    }
}
