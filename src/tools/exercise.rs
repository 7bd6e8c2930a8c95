//! The course's exercises, judged by the kernel: `fdlab check --exercise
//! NAME FILE`.
//!
//! An exercise is a file of `exercises/`, built into fdlab: its opening
//! comment is the task, and what follows is how an answer is judged.
//!
//! - *Write a scenario that ...* (the default): the exercise's statements
//!   (mostly `expect`s) are the conditions. They run after the student's
//!   scenario, as if written at its end, on Linux and on the model.
//! - *Predict what ... prints* (`# kind: predict` in the opening comment):
//!   the exercise's statements are a scenario. The answer is that scenario
//!   with a prediction (`= ...`) after every call; each is compared with
//!   what Linux answers.
//!
//! Linux is the judge. The model runs beside it, and where it answers
//! otherwise the verdict says so: that is a bug of the model, not of the
//! answer.

use serde::Serialize;

use super::compare::run_both;
use crate::backend::api::BackendError;
use crate::backend::model::ModelBackend;
use crate::backend::registry::by_name;
use crate::lang::print::{expected_text, outcome_text, stmt_text};
use crate::lang::{parse, Scenario, ScenarioError, StmtKind};

/// One exercise, as built into fdlab.
#[derive(Debug, Clone, Copy)]
pub struct Exercise {
    pub name: &'static str,
    /// The chapter of the book it belongs to.
    pub chapter: &'static str,
    /// Its file: the task, then how answers are judged.
    pub judge: &'static str,
    /// An answer that is right.
    pub solution: &'static str,
}

macro_rules! exercise {
    ($name:literal, $chapter:literal) => {
        Exercise {
            name: $name,
            chapter: $chapter,
            judge: include_str!(concat!("../../exercises/", $name, ".fds")),
            solution: include_str!(concat!("../../exercises/", $name, ".solution.fds")),
        }
    };
}

/// Every exercise, in the order of the book.
pub const EXERCISES: &[Exercise] = &[
    exercise!("one-offset-two-numbers", "three-tables.md"),
    exercise!("predict-dup-and-open", "three-tables.md"),
    exercise!("shared-and-copied-tables", "three-tables.md"),
    exercise!("predict-lifetime", "lifetime.md"),
    exercise!("predict-failed-open", "lifetime.md"),
    exercise!("writer-outlives-its-number", "lifetime.md"),
    exercise!("reused-number", "use-counts.md"),
    exercise!("predict-close-in-a-thread", "use-counts.md"),
    exercise!("predict-same-number-other-file", "use-counts.md"),
    exercise!("thread-and-child", "tables.md"),
    exercise!("predict-shared-table", "tables.md"),
    exercise!("exec-keeps-and-closes", "tables.md"),
    exercise!("reader-only-in-flight", "passing.md"),
    exercise!("predict-in-flight", "passing.md"),
    exercise!("predict-small-control-buffer", "passing.md"),
    exercise!("watched-under-a-closed-number", "epoll.md"),
    exercise!("predict-registration-and-dup", "epoll.md"),
    exercise!("watched-only-elsewhere", "epoll.md"),
    exercise!("one-file-or-two", "inspect.md"),
    exercise!("two-ends-crossed", "inspect.md"),
    exercise!("received-from-a-stranger", "inspect.md"),
    exercise!("terminal-before-and-after", "restore.md"),
    exercise!("crossed-pipe-ends", "restore.md"),
    exercise!("end-in-its-own-queue", "restore.md"),
    exercise!("reopened-is-another-file", "tracker.md"),
    exercise!("predict-at-the-limit", "tracker.md"),
    exercise!("over-budget", "tracker.md"),
    exercise!("predict-empty-messages", "checking.md"),
    exercise!("predict-datagram-peer-gone", "checking.md"),
    exercise!("unread-data-resets", "checking.md"),
    exercise!("predict-epoll-after-fork", "bsd-linux.md"),
    exercise!("old-file-still-watched", "bsd-linux.md"),
    exercise!("predict-close-range", "bsd-linux.md"),
];

/// The exercise named `name`.
pub fn find(name: &str) -> Option<&'static Exercise> {
    EXERCISES.iter().find(|e| e.name == name)
}

/// The line of an exercise's opening comment that makes it a prediction.
const PREDICT: &str = "kind: predict";

impl Exercise {
    /// Whether the answer is a prediction of the exercise's own scenario.
    pub fn predicts(&self) -> bool {
        self.header().any(|l| l.trim() == PREDICT)
    }

    /// The exercise's file split after its opening comment.
    fn parts(&self) -> (&'static str, &'static str) {
        let header: usize = self
            .judge
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.len() + 1)
            .sum();
        self.judge.split_at(header.min(self.judge.len()))
    }

    /// The opening comment's lines, without their `#`.
    fn header(&self) -> impl Iterator<Item = &'static str> {
        self.parts()
            .0
            .lines()
            .map(|l| l.trim_start_matches('#').strip_prefix(' ').unwrap_or(""))
    }

    /// The task, as a student reads it: the opening comment (for a
    /// prediction, followed by the scenario to predict).
    pub fn task(&self) -> String {
        let mut t: String = self
            .header()
            .filter(|l| l.trim() != PREDICT)
            .map(|l| format!("{l}\n"))
            .collect();
        if self.predicts() {
            t.push('\n');
            t.push_str(self.body());
        }
        t
    }

    /// What follows the opening comment.
    fn body(&self) -> &'static str {
        self.parts().1
    }
}

/// What the kernel said of an answer.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub exercise: String,
    /// Linux met every condition, or answered as predicted.
    pub right: bool,
    /// What is not right yet, one line each.
    pub findings: Vec<String>,
    /// Where the model answered otherwise than Linux (a bug of the model).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub model_differs: Vec<String>,
}

/// Why an answer could not be judged.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    /// The answer is not a valid scenario.
    #[error(transparent)]
    Invalid(#[from] ScenarioError),
    #[error("{0}")]
    Backend(#[from] BackendError),
}

/// Judges `answer` (the text of the file `file`) to exercise `ex`.
///
/// Errors: the answer does not parse (at its place in `file`); a backend
/// could not run it.
pub fn judge(ex: &Exercise, file: &str, answer: &str) -> Result<Verdict, JudgeError> {
    let mut findings = Vec::new();
    let own_lines = answer.lines().count();
    let scenario = if ex.predicts() {
        let s = parse(file, answer)?;
        // The exercises' own files parse: a test sees to it.
        let want = parse(ex.name, ex.body())?;
        findings.extend(not_the_scenario(&s, &want));
        s
    } else {
        let mut text = answer.to_string();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(ex.body());
        match parse(file, &text) {
            Ok(s) => s,
            // The answer parsed alone, so the exercise's conditions do not
            // fit it: they name a process it does not have.
            Err(e) if e.line > own_lines && parse(file, answer).is_ok() => {
                let condition = text.lines().nth(e.line - 1).unwrap_or_default().trim();
                findings.push(format!(
                    "the condition `{condition}` cannot apply: {}",
                    e.message
                ));
                return Ok(verdict(ex, findings, Vec::new()));
            }
            Err(e) => return Err(e.into()),
        }
    };
    if !findings.is_empty() {
        return Ok(verdict(ex, findings, Vec::new()));
    }
    let mut linux = by_name("linux")?;
    let c = run_both(
        &scenario,
        Box::new(ModelBackend::deferred()),
        linux.as_mut(),
        false,
    )?;
    // What Linux did otherwise than the answer or the conditions say, in
    // the order of the lines.
    let mut wrong: Vec<(usize, String)> = Vec::new();
    for st in c.linux.steps.iter().filter(|st| !st.passed) {
        let predicted = st.expected.as_ref().map(expected_text).unwrap_or_default();
        let got = outcome_text(&st.result);
        wrong.push((
            st.line,
            if st.line > own_lines {
                format!(
                    "not met: `{}: {} = {predicted}`: Linux answered {got}",
                    st.proc, st.strace
                )
            } else {
                format!(
                    "line {}: {}: {}: you expected {predicted}, Linux answered {got}",
                    st.line, st.proc, st.strace
                )
            },
        ));
    }
    for e in c.linux.expectations.iter().filter(|e| !e.passed) {
        wrong.push((
            e.line,
            if e.line > own_lines {
                format!("not met: `{}`: Linux: {}", e.text, e.seen)
            } else {
                format!("line {}: `{}`: Linux: {}", e.line, e.text, e.seen)
            },
        ));
    }
    wrong.sort_by_key(|w| w.0);
    findings.extend(wrong.into_iter().map(|w| w.1));
    let model = c
        .divergences
        .iter()
        .map(|d| {
            format!(
                "line {}: {}: model {}, Linux {}",
                d.line, d.what, d.model, d.linux
            )
        })
        .collect();
    Ok(verdict(ex, findings, model))
}

fn verdict(ex: &Exercise, findings: Vec<String>, model_differs: Vec<String>) -> Verdict {
    Verdict {
        exercise: ex.name.to_string(),
        right: findings.is_empty(),
        findings,
        model_differs,
    }
}

/// Where answer `got` is not exercise `want`'s scenario with a prediction
/// after every call.
fn not_the_scenario(got: &Scenario, want: &Scenario) -> Vec<String> {
    let mut out = Vec::new();
    for (i, w) in want.stmts.iter().enumerate() {
        let Some(g) = got.stmts.get(i) else {
            out.push(format!(
                "the answer ends before `{}`: copy the exercise's scenario whole",
                stmt_text(w)
            ));
            return out;
        };
        let same = match (&g.kind, &w.kind) {
            (
                StmtKind::Call {
                    proc: gp, call: gc, ..
                },
                StmtKind::Call {
                    proc: wp, call: wc, ..
                },
            ) => gp == wp && gc == wc,
            (a, b) => a == b,
        };
        if !same {
            out.push(format!(
                "line {}: the exercise's scenario has `{}` here",
                g.line,
                stmt_text(w)
            ));
            return out;
        }
        if matches!(g.kind, StmtKind::Call { expected: None, .. }) {
            out.push(format!(
                "line {}: no prediction: write `= ...` after the call",
                g.line
            ));
        }
    }
    if let Some(extra) = got.stmts.get(want.stmts.len()) {
        out.push(format!(
            "line {}: the exercise's scenario ends before this",
            extra.line
        ));
    }
    out
}
