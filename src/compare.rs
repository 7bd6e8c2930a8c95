//! Two backends in lockstep: every step's result compared, and the
//! topologies (at the end, or after every step). Linux is the ground truth;
//! a divergence is a bug in the model, or a gap in what it accepts.

use fdlab_model::Topology;
use serde::Serialize;

use crate::backend::{Backend, BackendError};
use crate::lang::print::{call_strace, expectation_text, outcome_text};
use crate::lang::{Scenario, StmtKind};
use crate::run::{Report, Runner};

/// Where the two backends disagree.
#[derive(Debug, Clone, Serialize)]
pub struct Divergence {
    pub line: usize,
    /// The call or expectation, or `topology`.
    pub what: String,
    pub model: String,
    pub linux: String,
}

/// Both reports and their divergences.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub model: Report,
    pub linux: Report,
    pub divergences: Vec<Divergence>,
    /// Where the comparison stopped because the answers became
    /// timing-dependent (line, reason); the rest of the scenario was not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<(usize, String)>,
}

impl Comparison {
    /// Both backends passed every expectation and agree.
    pub fn passed(&self) -> bool {
        self.divergences.is_empty() && self.model.passed() && self.linux.passed()
    }
}

/// The lines of two pretty JSON topologies that differ, `-` model, `+` linux.
pub fn topology_diff(m: &Topology, l: &Topology) -> Option<(String, String)> {
    if m == l {
        return None;
    }
    // Topologies are plain data: serializing cannot fail.
    let a = serde_json::to_string_pretty(m).expect("topology serializes");
    let b = serde_json::to_string_pretty(l).expect("topology serializes");
    let (al, bl): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let common = al.iter().zip(&bl).take_while(|(x, y)| x == y).count();
    let tail = al
        .iter()
        .rev()
        .zip(bl.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let pick = |v: &[&str]| v[common..v.len().saturating_sub(tail).max(common)].join("\n");
    Some((pick(&al), pick(&bl)))
}

/// Runs `scenario` on `model` and `linux` together.
///
/// Errors: what either backend could not do.
pub fn run_both(
    scenario: &Scenario,
    model: &mut dyn Backend,
    linux: &mut dyn Backend,
    every_step: bool,
) -> Result<Comparison, BackendError> {
    let mut m = Runner::new(model, false);
    let mut l = Runner::new(linux, false);
    let mut divergences = Vec::new();
    let mut stopped = None;
    for stmt in &scenario.stmts {
        if let Some(why) = m.backend().timing_dependent() {
            stopped = Some((stmt.line, why));
            break;
        }
        m.exec(stmt)?;
        l.exec(stmt)?;
        match &stmt.kind {
            StmtKind::Call { proc, call, .. } => {
                let (a, b) = (
                    &m.report().steps.last().expect("a step ran").result,
                    &l.report().steps.last().expect("a step ran").result,
                );
                if a != b {
                    divergences.push(Divergence {
                        line: stmt.line,
                        what: format!("{proc}: {}", call_strace(call)),
                        model: outcome_text(a),
                        linux: outcome_text(b),
                    });
                }
            }
            StmtKind::Expect(e) => {
                let (a, b) = (
                    m.report().expectations.last().expect("checked"),
                    l.report().expectations.last().expect("checked"),
                );
                if a.passed != b.passed {
                    divergences.push(Divergence {
                        line: stmt.line,
                        what: expectation_text(e),
                        model: a.seen.clone(),
                        linux: b.seen.clone(),
                    });
                }
            }
            StmtKind::Spawn { .. } => {}
        }
        if every_step {
            let (tm, tl) = (m.backend().topology()?, l.backend().topology()?);
            if let Some((a, b)) = topology_diff(&tm, &tl) {
                divergences.push(Divergence {
                    line: stmt.line,
                    what: "topology".into(),
                    model: a,
                    linux: b,
                });
            }
        }
    }
    let (model, linux) = (m.finish()?, l.finish()?);
    if !every_step && stopped.is_none() {
        if let Some((a, b)) = topology_diff(&model.topology, &linux.topology) {
            divergences.push(Divergence {
                line: scenario.stmts.last().map_or(0, |s| s.line),
                what: "final topology".into(),
                model: a,
                linux: b,
            });
        }
    }
    Ok(Comparison {
        model,
        linux,
        divergences,
        stopped,
    })
}

/// Divergences as text.
pub fn render(divs: &[Divergence]) -> String {
    let mut out = String::new();
    for d in divs {
        out.push_str(&format!("line {}: {}\n", d.line, d.what));
        for (who, text) in [("model", &d.model), ("linux", &d.linux)] {
            for (i, l) in text.lines().enumerate() {
                out.push_str(&format!(
                    "    {} {l}\n",
                    if i == 0 {
                        format!("{who}:")
                    } else {
                        "      ".into()
                    }
                ));
            }
            if text.is_empty() {
                out.push_str(&format!("    {who}: (nothing)\n"));
            }
        }
    }
    out
}
