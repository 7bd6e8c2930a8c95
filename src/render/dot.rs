//! The picture as Graphviz DOT, for those who want to lay it out with
//! `dot -Tpng`: the same boxes and arrows as the SVG.

use std::fmt::Write;

use super::picture::Picture;

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The picture as a DOT digraph.
pub fn dot(p: &Picture) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph fdlab {{");
    let _ = writeln!(out, "  label=\"{}\"; labelloc=t;", esc(&p.title));
    let _ = writeln!(
        out,
        "  rankdir=LR; node [shape=box, fontname=\"monospace\", fontsize=11];"
    );
    let _ = writeln!(out, "  subgraph tables {{ rank=same;");
    for (t, table) in p.tables.iter().enumerate() {
        let mut label = format!(
            "<tr><td><b>{}</b></td></tr>",
            esc(&table.processes.join(" "))
        );
        for (k, r) in table.rows.iter().enumerate() {
            let _ = write!(
                label,
                "<tr><td port=\"r{k}\">fd {}{}</td></tr>",
                r.fd,
                if r.cloexec { " cloexec" } else { "" }
            );
        }
        let _ = writeln!(
            out,
            "    t{t} [shape=plaintext, label=<<table border=\"1\" cellborder=\"0\">{label}</table>>];"
        );
    }
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "  subgraph files {{ rank=same;");
    for (i, f) in p.files.iter().enumerate() {
        let _ = writeln!(
            out,
            "    f{i} [label=\"{}\\n{}{}{} {}\"];",
            esc(&f.title),
            esc(&f.detail),
            if f.detail.is_empty() { "" } else { ", " },
            f.slots,
            if f.slots == 1 { "slot" } else { "slots" }
        );
    }
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "  subgraph objects {{ rank=same;");
    for (o, obj) in p.objects.iter().enumerate() {
        let _ = writeln!(
            out,
            "    o{o} [shape=ellipse, label=\"{}\"];",
            esc(&obj.label)
        );
    }
    let _ = writeln!(out, "  }}");
    for (t, table) in p.tables.iter().enumerate() {
        for (k, r) in table.rows.iter().enumerate() {
            let _ = writeln!(out, "  t{t}:r{k} -> f{};", r.file);
        }
    }
    for (i, f) in p.files.iter().enumerate() {
        let _ = writeln!(out, "  f{i} -> o{} [color=gray];", f.object);
    }
    for w in &p.watches {
        let _ = writeln!(
            out,
            "  o{} -> f{} [style=dashed, color=\"#2a8f86\", label=\"watches as {}\", constraint=false];",
            w.epoll, w.file, w.fd
        );
    }
    for f in &p.flights {
        let _ = writeln!(
            out,
            "  f{} -> f{} [style=dotted, color=\"#b35c00\", label=\"in flight\", constraint=false];",
            f.socket, f.file
        );
    }
    for (socket, what) in &p.riding {
        let _ = writeln!(
            out,
            "  r{socket} [shape=note, color=\"#b35c00\", label=\"in flight: {}\"];\n  f{socket} -> r{socket} [style=dotted, color=\"#b35c00\"];",
            esc(&what.join(", "))
        );
    }
    let _ = writeln!(out, "}}");
    out
}
