//! A scenario as one HTML page that steps through it: the picture after
//! every statement, what the statement answered, and the scenario with
//! its line marked. One file with nothing to fetch; the arrow keys (or
//! the buttons) step, `page.html#N` opens at step N, and without
//! JavaScript every step shows, one under the other.

use std::fmt::Write;

use super::picture::Picture;
use super::svg::{esc, svg};
use super::text::statement_lines;
use crate::tools::run::{Frame, Report};

/// One step of the page.
#[derive(Debug, Clone)]
pub struct Step {
    /// The lines of the statement it follows and of the expectations
    /// after that, which were checked on this state.
    pub lines: Vec<usize>,
    /// What they said.
    pub text: String,
    /// The picture after it.
    pub svg: String,
}

/// The page: `title`, the scenario's `source` (if known), and `steps`.
pub fn stepper(title: &str, source: Option<&str>, steps: &[Step]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{t}</title>
<style>
body {{ font-family: sans-serif; margin: 1em 2em; color: #222; }}
.bar {{ display: flex; gap: 1em; align-items: center; margin: .5em 0; }}
button {{ font-size: 1em; padding: .2em 1em; }}
.main {{ display: flex; gap: 2em; align-items: flex-start; }}
.main > div {{ flex: 1; min-width: 0; }}
pre {{ font-family: "DejaVu Sans Mono", monospace; font-size: 13px; margin: 0; white-space: pre-wrap; }}
.src {{ background: #f6f6f6; padding: .5em; flex: 0 0 30em; overflow-wrap: anywhere; }}
.src span {{ display: block; padding: 0 .3em; }}
.src span.cur {{ background: #ffe9a8; }}
.step svg {{ max-width: 100%; height: auto; }}
.said {{ background: #eef4ff; padding: .5em; margin-bottom: .5em; white-space: pre-wrap; }}
</style></head>
<body>
<h1>{t}</h1>
<div class="bar"><button id="prev">&#9664; back</button><button id="next">next &#9654;</button><span id="pos"></span><span class="hint">(or the arrow keys)</span></div>
<div class="main">
"#,
        t = esc(title)
    );
    if let Some(src) = source {
        out.push_str("<pre class=\"src\">");
        for (i, l) in src.lines().enumerate() {
            let _ = write!(out, "<span data-line=\"{}\">{}</span>", i + 1, esc(l));
        }
        out.push_str("</pre>\n");
    }
    out.push_str("<div>\n");
    for (i, s) in steps.iter().enumerate() {
        // Each picture's own arrowhead: ids are per page.
        let svg = s
            .svg
            .replace("id=\"head\"", &format!("id=\"head-{i}\""))
            .replace("url(#head)", &format!("url(#head-{i})"));
        let lines: Vec<String> = s.lines.iter().map(usize::to_string).collect();
        let _ = write!(
            out,
            "<div class=\"step\" data-lines=\"{}\">\n<pre class=\"said\">{}</pre>\n{svg}</div>\n",
            lines.join(" "),
            esc(&s.text)
        );
    }
    out.push_str(
        r#"</div></div>
<script>
const steps = Array.from(document.querySelectorAll('.step'));
const lines = Array.from(document.querySelectorAll('.src span'));
let at = 0;
function show(k) {
  at = Math.max(0, Math.min(steps.length - 1, k));
  steps.forEach((s, j) => { s.hidden = j !== at; });
  const mine = steps[at].dataset.lines.split(' ');
  lines.forEach(l => l.classList.toggle('cur', mine.includes(l.dataset.line)));
  document.getElementById('pos').textContent = 'step ' + (at + 1) + ' of ' + steps.length;
}
document.getElementById('prev').onclick = () => show(at - 1);
document.getElementById('next').onclick = () => show(at + 1);
document.addEventListener('keydown', e => {
  if (e.key === 'ArrowRight') show(at + 1);
  if (e.key === 'ArrowLeft') show(at - 1);
});
// `page.html#3` opens at step 3.
show((parseInt(location.hash.slice(1), 10) || 1) - 1);
</script>
</body></html>
"#,
    );
    out
}

/// The page of a run: each frame's picture, under what the statement and
/// the expectations after it said (`fdlab run --html`).
pub fn scenario_page(r: &Report, frames: &[Frame], title: &str, source: Option<&str>) -> String {
    let mut said = statement_lines(r);
    said.sort_by_key(|(line, _)| *line);
    let steps: Vec<Step> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let end = frames.get(i + 1).map_or(usize::MAX, |n| n.line);
            let mine: Vec<&(usize, String)> = said
                .iter()
                .filter(|(line, _)| (f.line..end).contains(line))
                .collect();
            let mut lines: Vec<usize> = mine.iter().map(|(line, _)| *line).collect();
            lines.dedup();
            let text: Vec<String> = mine
                .iter()
                .map(|(line, t)| format!("{line}: {t}"))
                .collect();
            Step {
                lines,
                text: text.join("\n"),
                svg: svg(&Picture::of(&f.topology, title).with_flights(&f.flights)),
            }
        })
        .collect();
    stepper(title, source, &steps)
}
