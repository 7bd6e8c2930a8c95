//! Everything fdlab prints as text, in one place: a run's report, a
//! topology, divergences between backends, the corpus table, a fuzzing
//! summary and a minimal failing scenario.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

use fdlab_model::Topology;

use crate::backend::registry::ALL;
use crate::lang::print::{expected_text, outcome_text, scenario_text};
use crate::lang::Scenario;
use crate::tools::bench::restore::RestoreBench;
use crate::tools::bench::InspectBench;
use crate::tools::check::Row;
use crate::tools::compare::{Comparison, Divergence};
use crate::tools::dump::Dumped;
use crate::tools::fuzz::{Finding, FuzzReport};
use crate::tools::inspect::{Desc, Inspection, Object};
use crate::tools::restore::{How, Outcome};
use crate::tools::run::Report;

/// Who a successful `fork` or `clone_files` made. The language's result
/// is 0 for process life; a real parent gets the child's pid, so the line
/// says which process that is rather than let `= 0` read as "the child".
fn child_note(s: &crate::tools::run::Step) -> Option<String> {
    let child = s.args.first()?;
    match (s.call.as_str(), &s.result) {
        ("fork", Ok(_)) => Some(format!("(child {child})")),
        ("clone_files", Ok(_)) => Some(format!("(child {child}, sharing the table)")),
        _ => None,
    }
}

/// A run's report: strace-style steps with what ran underneath,
/// expectations, failures, then the topology.
pub fn report(r: &Report) -> String {
    report_with(r, &[])
}

/// [`report`], with the topology after the calls `after` lists, where it
/// changed (`--every-step`).
fn report_with(r: &Report, after: &[(usize, Topology)]) -> String {
    let mut out = String::new();
    let mut lines = statement_lines(r);
    // After the calls, so that the stable sort puts each under its call.
    let mut last: Option<&Topology> = None;
    for (line, t) in after {
        if last != Some(t) {
            let shown: String = topology(t)
                .lines()
                .map(|l| format!("        | {l}\n"))
                .collect();
            lines.push((*line, shown.trim_end().to_string()));
        }
        last = Some(t);
    }
    lines.sort_by_key(|(line, _)| *line);
    for (_, l) in lines {
        out.push_str(&l);
        out.push('\n');
    }
    if !r.failures.is_empty() {
        let _ = writeln!(out, "\n{} failed:", r.failures.len());
        for f in &r.failures {
            let _ = writeln!(out, "  line {}: {}", f.line, f.message);
        }
    }
    out.push('\n');
    out.push_str(&topology(&r.topology));
    if !r.trace_names.is_empty() {
        // The trace names files by serial, the topology by canonical id.
        let names: Vec<String> = r
            .trace_names
            .iter()
            .enumerate()
            .map(|(id, serial)| format!("file {id} is file#{serial}"))
            .collect();
        let _ = writeln!(out, "  (in the trace: {})", names.join(", "));
    }
    out
}

/// What a report says of each statement, by line (in the order spawns,
/// calls, expectations: a stable sort by line puts them in order).
pub fn statement_lines(r: &Report) -> Vec<(usize, String)> {
    let mut lines: Vec<(usize, String)> = Vec::new();
    for s in &r.spawns {
        let mut l = format!("spawn {}{}", s.name, if s.stdio { " stdio" } else { "" });
        for t in &s.trace {
            let _ = write!(l, "\n        {t}");
        }
        lines.push((s.line, l));
    }
    for s in &r.steps {
        let mut l = format!("{}: {} = {}", s.proc, s.strace, outcome_text(&s.result));
        if let Some(note) = child_note(s) {
            let _ = write!(l, " {note}");
        }
        if !s.passed {
            let e = s.expected.as_ref().map(expected_text).unwrap_or_default();
            let _ = write!(l, "    <- FAILED, expected {e}");
        }
        for t in &s.trace {
            let _ = write!(l, "\n        {t}");
        }
        lines.push((s.line, l));
    }
    for e in &r.expectations {
        let verdict = if e.passed {
            "holds".to_string()
        } else {
            format!("FAILED: {}", e.seen)
        };
        lines.push((e.line, format!("{}    <- {verdict}", e.text)));
    }
    lines
}

/// A topology: tables, each process's descriptors, each open file.
pub fn topology(t: &Topology) -> String {
    let mut out = String::from("topology:\n");
    for (i, names) in t.tables.iter().enumerate() {
        let _ = writeln!(out, "  table {i}: {}", names.join(" "));
    }
    for p in &t.processes {
        let fds: Vec<String> = p
            .fds
            .iter()
            .map(|f| {
                format!(
                    "{}->file {}{}",
                    f.fd,
                    f.file,
                    if f.cloexec { " (cloexec)" } else { "" }
                )
            })
            .collect();
        let list = if fds.is_empty() {
            "no descriptors".to_string()
        } else {
            fds.join(", ")
        };
        let ctty = p.ctty.map_or(String::new(), |t| {
            format!("; controlling terminal: pty {t}")
        });
        let _ = writeln!(out, "  {} (table {}): {list}{ctty}", p.name, p.table);
    }
    for f in &t.files {
        let mut d = format!("  file {}: {}", f.id, f.kind);
        if let Some(p) = &f.path {
            let _ = write!(d, " {p}");
        }
        if let Some(o) = f.offset {
            let _ = write!(d, " offset {o}");
        }
        if let Some(fl) = &f.flags {
            let _ = write!(d, " {}", fl.status_string());
        }
        if let Some(ty) = &f.socket_type {
            let _ = write!(d, " {ty}");
        }
        if let Some(n) = &f.name {
            let _ = write!(d, " named {n}");
        }
        if f.listening == Some(true) {
            let _ = write!(d, " listening");
        }
        if let Some(e) = &f.end {
            let _ = write!(d, " {e} end");
        }
        if let Some(o) = f.object {
            let _ = write!(d, " of object {o}");
        }
        if let Some(t) = f.pty {
            let _ = write!(d, ", pty {t}");
        }
        if let Some(ts) = &f.targets {
            let list: Vec<String> = ts
                .iter()
                .map(|t| {
                    let file = t
                        .file
                        .map_or("a file no process has open".to_string(), |f| {
                            format!("file {f}")
                        });
                    format!("{} -> {file} ({})", t.fd, t.events)
                })
                .collect();
            let _ = write!(d, " watching [{}]", list.join(", "));
        }
        out.push_str(&d);
        out.push('\n');
    }
    out
}

/// Where two backends disagree, the model's answer over Linux's.
pub fn divergences(divs: &[Divergence]) -> String {
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

/// `fdlab check`'s rows as an aligned table, the failures and divergences
/// under it, and a summary line.
pub fn check_table(rows: &[Row]) -> String {
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
        if let Some(e) = &r.invalid {
            for _ in ALL {
                out.push_str(&format!("  {:<6}", "-"));
            }
            notes.push(format!("{} is invalid: {e}", r.scenario));
        }
        for res in &r.results {
            let (name, res) = (&res.backend, &res.verdict);
            let cell = if res.passed() { "pass" } else { "FAIL" };
            out.push_str(&format!("  {cell:<6}"));
            if !res.passed() {
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

/// A lockstep run of the model and Linux: Linux's report, how many states
/// of the model were followed, and where the two disagree.
pub fn comparison(c: &Comparison) -> String {
    let mut out = report_with(&c.linux, &c.after_step);
    if c.states > 1 {
        let _ = writeln!(
            out,
            "\nLinux finishes some work later (the unix garbage collector, a pty's echo): the model \
             followed up to {} states at once, keeping those that answered as Linux did",
            c.states
        );
    }
    if let Some((line, why)) = &c.stopped {
        let _ = writeln!(out, "\nthe comparison stopped at line {line}: {why}");
    }
    if c.divergences.is_empty() && c.stopped.is_some() {
        out.push_str("\nmodel and linux agree on every step up to there\n");
    } else if c.divergences.is_empty() {
        out.push_str("\nmodel and linux agree on every step and on the topology\n");
    } else {
        let _ = writeln!(
            out,
            "\n{} divergences (model vs linux):",
            c.divergences.len()
        );
        out.push_str(&divergences(&c.divergences));
    }
    out
}

/// A fuzzing run's summary: throughput, timing, where the time went, the
/// cost of observation, and the verdict.
pub fn fuzz_summary(r: &FuzzReport, written_to: &str) -> String {
    let mut out = String::new();
    let secs = r.elapsed.as_secs_f64();
    let _ = writeln!(
        out,
        "{} scenarios ({} steps) in {secs:.1} s: {:.0} scenarios/s; Linux's timing mattered in {} \
         (the model followed up to {} states at once); {} stopped early",
        r.cases,
        r.steps,
        f64::from(r.cases) / secs.max(1e-9),
        r.branched,
        r.most_states,
        r.stopped_early
    );
    let c = &r.cost;
    let parts = format!(
        "process creation {:.1} s, control round trips {:.1} s, observation {:.1} s (of which kcmp {:.1} s)",
        c.spawn.as_secs_f64(),
        c.calls.as_secs_f64(),
        c.observe.as_secs_f64(),
        c.compare.as_secs_f64(),
    );
    if r.jobs > 1 {
        // Cases overlap: their times add up to more than the run took.
        let _ = writeln!(
            out,
            "time, summed over the cases ({} at a time): {parts}",
            r.jobs
        );
    } else {
        let _ = writeln!(
            out,
            "time: {parts}, the rest (the model, generation, shrinking) {:.1} s",
            (secs - (c.spawn + c.calls + c.observe).as_secs_f64()).max(0.0)
        );
    }
    if c.descriptors > 0 {
        let _ = writeln!(
            out,
            "observation: {} kcmp calls for {} descriptors, {} of them unchanged since the step before and not read again ({:.2} calls per descriptor; comparing all pairs: {}, {:.2} per descriptor)",
            c.comparisons,
            c.descriptors,
            c.carried,
            c.comparisons as f64 / c.descriptors as f64,
            c.all_pairs,
            c.all_pairs as f64 / c.descriptors as f64
        );
    }
    if !r.coverage.calls.is_empty() {
        out.push_str("where the calls landed (aimed at the files where their arguments matter):\n");
        for &(call, at, n, hit) in &r.coverage.calls {
            let _ = writeln!(
                out,
                "  {call:<17} {hit:>7} of {n:>7} ({:>5.1}%) on {at}",
                100.0 * hit as f64 / n.max(1) as f64
            );
        }
    }
    let total: u64 = r.coverage.mix.values().sum();
    if total > 0 {
        let pct = |n: u64| 100.0 * n as f64 / total as f64;
        let mut mix: Vec<(&str, u64)> = r.coverage.mix.iter().map(|(k, v)| (*k, *v)).collect();
        mix.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let list: Vec<String> = mix
            .iter()
            .map(|(name, n)| format!("{name} {:.1}%", pct(*n)))
            .collect();
        let _ = writeln!(
            out,
            "the mix: {total} calls, {} of them ({:.1}%) only version 2 of the language can say; {}",
            r.coverage.version2,
            pct(r.coverage.version2),
            list.join(", ")
        );
        let [none, one, more] = r.coverage.ready;
        if none + one + more > 0 {
            let _ = writeln!(
                out,
                "epoll_wait reported nothing {none} times, one registration {one} times, several {more} times"
            );
        }
    }
    if let Some((n, t)) = r.first_failure {
        let _ = writeln!(
            out,
            "first disagreement: scenario {n}, after {:.1} s; shrinking took the rest",
            t.as_secs_f64()
        );
    }
    match &r.failure {
        None if r.interrupted => {
            let _ = writeln!(
                out,
                "interrupted: model and linux agree on the {} scenarios that ran",
                r.cases
            );
        }
        None => out.push_str("model and linux agree on every case\n"),
        Some(f @ Finding::Disagreement { divergences: d, .. }) => {
            let _ = write!(
                out,
                "DISAGREEMENT (minimal scenario written to {written_to}):\n{}\n{}",
                divergences(d),
                finding(f)
            );
        }
        Some(Finding::Aborted {
            why,
            scenario: Some(_),
        }) => {
            let _ = writeln!(
                out,
                "FAILED (the smallest failing scenario written to {written_to}): {why}"
            );
        }
        Some(Finding::Aborted {
            why,
            scenario: None,
        }) => {
            let _ = writeln!(out, "FAILED: {why}");
        }
    }
    out
}

/// A finding as a `.fds` file: the minimal scenario with Linux's answers as
/// its expectations, and the divergences as comments at its top.
pub fn finding(f: &Finding) -> String {
    match f {
        Finding::Disagreement {
            scenario,
            divergences: d,
        } => annotated(scenario, d),
        Finding::Aborted {
            why,
            scenario: Some(s),
        } => format!("# {why}\n{}", scenario_text(s)),
        Finding::Aborted { scenario: None, .. } => String::new(),
    }
}

fn annotated(s: &Scenario, d: &[Divergence]) -> String {
    let mut out = String::from(
        "# A minimal scenario on which the model and Linux disagree; the\n# expectations are Linux's answers. Divergences:\n",
    );
    for line in divergences(d).lines() {
        let _ = writeln!(out, "#   {line}");
    }
    out.push_str(&scenario_text(s));
    out
}

/// Descriptors grouped by process: `bash[12] 0 1 2, cat[13] 0`.
fn descs_by_process(ds: &[Desc], commands: &HashMap<i32, &str>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ds.len() {
        let pid = ds[i].pid;
        let command = commands.get(&pid).copied().unwrap_or("?");
        let mut fds = Vec::new();
        while i < ds.len() && ds[i].pid == pid {
            fds.push(ds[i].fd.to_string());
            i += 1;
        }
        parts.push(format!("{command}[{pid}] {}", fds.join(" ")));
    }
    parts.join(", ")
}

/// `fdlab inspect`'s report: processes and their tables, the open files
/// with every descriptor that names them, the objects several open files
/// reach, and what was left out.
pub fn inspection(ins: &Inspection) -> String {
    let mut out = String::new();
    let t = &ins.topology;
    let c = &ins.cost;
    let processes = ins.topology.processes.len();
    let tables = t.tables.len();
    let _ = writeln!(
        out,
        "{processes} processes ({tables} tables), {} descriptors, {} open files; {} kcmp calls \
         (comparing all pairs: {}), {:.1} ms{}",
        c.descriptors,
        c.files,
        c.kcmp_calls,
        c.all_pairs,
        c.total_ms,
        match ins.frozen {
            Some(n) => format!(", {n} processes frozen meanwhile"),
            None => String::new(),
        }
    );
    let shared: Vec<&Vec<String>> = t.tables.iter().filter(|n| n.len() > 1).collect();
    if !shared.is_empty() {
        out.push_str("\ntables shared by several processes\n");
        for names in shared {
            let _ = writeln!(out, "  {}", names.join(" "));
        }
    }
    out.push_str("\nopen files\n");
    if ins.files.is_empty() {
        out.push_str("  none\n");
    }
    let views: HashMap<usize, &fdlab_model::topology::FileView> =
        t.files.iter().map(|v| (v.id, v)).collect();
    let commands: HashMap<i32, &str> = t
        .processes
        .iter()
        .filter_map(|p| Some((p.pid?, p.command.as_deref()?)))
        .collect();
    for d in &ins.files {
        let view = views.get(&d.file).copied();
        let mut head = format!("  file {}: {}", d.file, d.kind);
        if d.target != d.kind.name() {
            let _ = write!(head, " {}", d.target);
        }
        if let Some(v) = view {
            if let Some(e) = v.end {
                let _ = write!(head, " ({e} end)");
            }
            if let (Some(o), true) = (v.offset, d.kind.name() == "regular") {
                let _ = write!(head, " offset {o}");
            }
            if let Some(fl) = v.flags {
                let _ = write!(head, " {}", fl.status_string());
            }
        }
        let _ = writeln!(out, "{head}");
        let procs: BTreeSet<i32> = d.descriptors.iter().map(|x| x.pid).collect();
        let _ = writeln!(
            out,
            "      {} {} in {} {}: {}",
            d.descriptors.len(),
            if d.descriptors.len() == 1 {
                "descriptor"
            } else {
                "descriptors"
            },
            procs.len(),
            if procs.len() == 1 {
                "process"
            } else {
                "processes"
            },
            descs_by_process(&d.descriptors, &commands)
        );
        if let Some(s) = &d.socket {
            let mut l = format!("      unix socket, {}", s.state);
            if let Some(n) = &s.name {
                let _ = write!(l, ", bound to {n}");
            }
            if let Some(sh) = s.shutdown {
                let _ = write!(l, ", shut down for {sh}");
            }
            if s.queued > 0 {
                let what = if s.state == "listening" {
                    "connections waiting"
                } else {
                    "bytes queued"
                };
                let _ = write!(l, ", {} {what}", s.queued);
            }
            let _ = writeln!(out, "{l}");
        }
        if !d.endpoints.is_empty() {
            let _ = writeln!(
                out,
                "      other end: {}",
                descs_by_process(&d.endpoints, &commands)
            );
        } else if matches!(d.kind.name(), "pipe" | "socket")
            && d.socket.as_ref().is_none_or(|s| s.state == "connected")
        {
            let _ = writeln!(out, "      other end: none inspected");
        }
        if let Some(targets) = view.and_then(|v| v.targets.as_ref()) {
            for r in targets {
                let file = match r.file {
                    Some(f) => format!("file {f}"),
                    None => "a file no inspected process holds".to_string(),
                };
                let _ = writeln!(out, "      watches {} -> {file} ({})", r.fd, r.events);
            }
        }
        for w in &d.watched_by {
            let _ = writeln!(
                out,
                "      watched by the epoll of file {} as {}",
                w.epoll, w.fd
            );
        }
    }
    let multi: Vec<&Object> = ins.objects.iter().filter(|o| o.files.len() > 1).collect();
    if !multi.is_empty() {
        out.push_str("\nobjects that several open files reach\n");
        for o in multi {
            let mut l = format!("  {}", o.name);
            if let Some((dev, ino)) = &o.inode {
                let _ = write!(l, " (inode {ino} on {dev})");
            }
            let files: Vec<String> = o.files.iter().map(|f| format!("file {f}")).collect();
            let _ = writeln!(out, "{l}: {}", files.join(", "));
        }
    }
    if !ins.warnings.is_empty() {
        let _ = writeln!(
            out,
            "\n{}",
            if ins.partial {
                "left out (the result is partial)"
            } else {
                "notes"
            }
        );
        for w in &ins.warnings {
            let _ = writeln!(out, "  {w}");
        }
    }
    out
}

/// `fdlab bench inspect`'s figures.
pub fn inspect_bench(r: &InspectBench) -> String {
    let mut out = String::new();
    let m = &r.median;
    let _ = writeln!(
        out,
        "tree: {} processes, {} descriptors, {} open files (built in {:.1} s)",
        r.processes, r.descriptors, r.files, r.build_seconds
    );
    let times: Vec<String> = r
        .runs
        .iter()
        .map(|c| format!("{:.0}", c.total_ms))
        .collect();
    let _ = writeln!(
        out,
        "fdlab inspect: median {:.0} ms of {} runs ({} ms): reading /proc {:.0} ms, finding what is shared {:.0} ms",
        m.total_ms,
        r.runs.len(),
        times.join(", "),
        m.read_ms,
        m.compare_ms
    );
    let _ = writeln!(
        out,
        "kcmp: {} calls, {:.2} per descriptor ({} between files: {:.2} per descriptor); comparing all pairs: {}, {:.0} per descriptor",
        m.kcmp_calls,
        r.kcmp_per_descriptor,
        m.file_kcmp_calls,
        r.file_kcmp_per_descriptor,
        m.all_pairs,
        r.all_pairs_per_descriptor
    );
    for t in &r.tools {
        match t.seconds {
            Some(s) => {
                let _ = write!(
                    out,
                    "{}: {:.0} ms, {} lines ({:.1}x fdlab inspect's median)",
                    t.tool,
                    s * 1e3,
                    t.lines,
                    s * 1e3 / m.total_ms.max(1e-9)
                );
                if let Some(e) = &t.error {
                    let _ = write!(out, "; it said: {e}");
                }
                out.push('\n');
            }
            None => {
                let _ = writeln!(
                    out,
                    "{}: {}",
                    t.tool,
                    t.error.as_deref().unwrap_or("not run")
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "a tree with no repeated (device, inode, position): {} descriptors, {} kcmp calls between files",
        r.unique_tree_descriptors, r.unique_tree_file_kcmp
    );
    out
}

/// What `fdlab dump` did, for standard error: counts, what could not be
/// read, what cannot be restored.
pub fn dumped(d: &Dumped, to: &str) -> String {
    let mut out = format!(
        "dumped {} processes ({} tables), {} descriptors, {} open files ({} in flight only), {} pipes, {} socket pairs into {to}\n",
        d.processes,
        d.image.tables.len(),
        d.descriptors,
        d.files,
        d.in_flight,
        d.image.pipes.len(),
        d.image.pairs.len(),
    );
    if let Some(n) = d.frozen {
        let _ = writeln!(out, "froze and resumed {n} processes");
    }
    for n in &d.notes {
        let _ = writeln!(out, "note: {n}");
    }
    if !d.image.unrestorable.is_empty() {
        let _ = writeln!(
            out,
            "{} parts cannot be restored (restore refuses them unless --skip-unrestorable):",
            d.image.unrestorable.len()
        );
        for u in &d.image.unrestorable {
            let _ = writeln!(out, "  {}: {}", u.what, u.why);
        }
    }
    out
}

/// How a process was made, in words.
fn how_made(name: &str, how: &How) -> String {
    match how {
        How::Spawn => format!("{name} (spawned)"),
        How::Fork { from } => format!("{name} (fork of {from})"),
        How::CloneFiles { from } => format!("{name} (clone_files of {from}: its table)"),
        How::Unshare => format!("then {name} unshares its table"),
        How::Setsid => format!("then {name} leads a session (setsid)"),
        How::Terminal { path, at, .. } => {
            format!("then {name} opens {path} at {at} and takes its pty as controlling terminal")
        }
    }
}

/// One restore: what was made, how files travelled, the verification,
/// and with `plan` each process's schedule; then the restored topology.
pub fn restore_outcome(o: &Outcome, plan: bool) -> String {
    let r = &o.restored;
    let mut out = format!(
        "restored on {}: {} processes, {} descriptors, {} open files\n",
        o.backend, r.processes, r.descriptors, r.files
    );
    let made: Vec<String> = r.created.iter().map(|(n, h)| how_made(n, h)).collect();
    let _ = writeln!(out, "  made: {}", made.join(", "));
    let per = if r.messages == 0 {
        0.0
    } else {
        r.files_sent as f64 / r.messages as f64
    };
    let _ = writeln!(
        out,
        "  served {} files to the processes that hold them in {} messages ({per:.1} a message)",
        r.files_sent, r.messages
    );
    for n in &r.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    match &o.differences {
        None => {}
        Some(d) if d.is_empty() => {
            let _ = writeln!(out, "  verified: the restored tree dumps as the image");
        }
        Some(d) => {
            let _ = writeln!(
                out,
                "  VERIFY FAILED: {} differences from the image:",
                d.len()
            );
            for line in d {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    if plan {
        for log in &r.logs {
            let _ = writeln!(
                out,
                "\n{} (sent {} files in {} messages, received {}):",
                log.process, log.sent, log.messages, log.received
            );
            for s in &log.steps {
                let _ = writeln!(out, "  {s}");
            }
        }
    }
    out.push('\n');
    out.push_str(&topology(&o.topology));
    out
}

/// `fdlab bench restore`'s table.
pub fn restore_bench(r: &RestoreBench) -> String {
    let mut out = String::new();
    for s in &r.shapes {
        let m = &s.median;
        let _ = writeln!(
            out,
            "{:?} tree: {} processes, {} descriptors, {} open files",
            s.shape, s.processes, s.descriptors, s.files
        );
        let _ = writeln!(
            out,
            "  fdlab restore (median of {}): {:.3} s ({:.3} planning, {:.3} making processes, {:.3} running programs), {:.0} descriptors/s",
            s.runs.len(),
            m.seconds,
            m.plan_seconds,
            m.make_seconds,
            m.programs_seconds,
            m.descriptors_per_second
        );
        let _ = writeln!(
            out,
            "  {} messages carried {} files: {:.1} descriptors a message",
            m.messages, m.files_sent, m.descriptors_per_message
        );
        let _ = writeln!(
            out,
            "  the system calls alone (the floor, median): {:.3} s, {:.0} descriptors/s; fdlab restore takes {:.1}x that",
            s.floor_seconds,
            s.floor_descriptors_per_second,
            m.seconds / s.floor_seconds
        );
        if !s.criu_seconds.is_empty() {
            let med = crate::tools::bench::median(s.criu_seconds.clone());
            let _ = writeln!(
                out,
                "  CRIU restore (median of {}): {med:.3} s; fdlab/CRIU = {:.2}",
                s.criu_seconds.len(),
                m.seconds / med
            );
        }
        if let Some(e) = &s.criu_error {
            let _ = writeln!(out, "  CRIU: {e}");
        }
    }
    out
}

/// The kernel's verdict on an answer to an exercise, for a student.
pub fn exercise_verdict(v: &crate::tools::exercise::Verdict) -> String {
    let mut out = if v.right {
        format!("{}: right. Linux agrees with every line.\n", v.exercise)
    } else {
        format!("{}: not yet.\n", v.exercise)
    };
    for f in &v.findings {
        out.push_str(&format!("  {f}\n"));
    }
    if !v.model_differs.is_empty() {
        out.push_str("The model answered otherwise than Linux (a bug of fdlab's model, not of your answer):\n");
        for d in &v.model_differs {
            out.push_str(&format!("  {d}\n"));
        }
    }
    out
}

/// `fdlab bench fork`.
pub fn fork_bench(r: &crate::tools::bench::fork::ForkBench) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "fork + exit + wait, holding 1 and {} descriptors (median of 7 batches of {}):",
        r.fds, r.rounds
    );
    for (who, c) in [("kernel", &r.kernel), ("model", &r.model)] {
        let _ = writeln!(
            out,
            "  {who:6} {:9.2} us / {:9.2} us: {:6.1} ns a descriptor",
            c.base_us, c.loaded_us, c.per_fd_ns
        );
    }
    let _ = writeln!(out, "  model/kernel per descriptor: {:.2}x", r.ratio);
    let _ = writeln!(
        out,
        "  the model's table copy alone (fork without the exit): {:.1} ns a descriptor, {:.2}x the kernel's fork + exit",
        r.model_copy_per_fd_ns,
        r.model_copy_per_fd_ns / r.kernel.per_fd_ns
    );
    let _ = writeln!(
        out,
        "World::clone with {} descriptors: {:.1} us",
        r.fds, r.model_clone_us
    );
    out
}
