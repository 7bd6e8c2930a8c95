//! The picture as SVG, drawn in Rust (no external program): boxes, text and
//! Bézier arrows, laid out by [`super::picture::Layout`].

use std::fmt::Write;

use fdlab_model::kind::FileType;

use super::picture::{
    Layout, Picture, FILE_H, FILE_W, FILE_X, HEAD_LINE, OBJ_H, OBJ_W, OBJ_X, ROW_H, TABLE_W,
    TABLE_X,
};

/// XML-escapes text.
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            _ => o.push(c),
        }
    }
    o
}

/// `s`, cut to fit `width` units of 12-pixel monospace text: a path keeps
/// its end (the file's name), anything else its start.
fn fit(s: &str, width: f64) -> String {
    let max = ((width - 20.0) / 7.3).max(4.0) as usize;
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    if s.starts_with('/') {
        let tail: String = s.chars().skip(n - (max - 1)).collect();
        format!("…{tail}")
    } else {
        let head: String = s.chars().take(max - 1).collect();
        format!("{head}…")
    }
}

/// A fill colour per kind of object, so that kinds are told apart at a
/// glance.
fn fill(kind: FileType) -> &'static str {
    match kind {
        FileType::Regular => "#e8f1fb",
        FileType::Directory => "#e9f5e9",
        FileType::Chardev => "#f3eefa",
        FileType::Pipe => "#fdf0e2",
        FileType::Socket => "#fbe9ec",
        FileType::Epoll => "#e6f6f5",
        FileType::Eventfd => "#fcf8dc",
        FileType::Unknown => "#eeeeee",
    }
}

/// A horizontal S-shaped arrow from (x1, y1) to (x2, y2).
fn arrow(out: &mut String, x1: f64, y1: f64, x2: f64, y2: f64, class: &str) {
    let mid = (x1 + x2) / 2.0;
    let _ = writeln!(
        out,
        r#"<path class="{class}" d="M {x1:.1} {y1:.1} C {mid:.1} {y1:.1}, {mid:.1} {y2:.1}, {x2:.1} {y2:.1}" marker-end="url(#head)"/>"#
    );
}

/// The picture as an SVG document.
pub fn svg(p: &Picture) -> String {
    let l = Layout::of(p);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="DejaVu Sans Mono, monospace" font-size="12">"#,
        w = l.width,
        h = l.height
    );
    out.push_str(
        r##"<defs><marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>
<style>
.ref { fill: none; stroke: #555; stroke-width: 1.2; }
.obj { fill: none; stroke: #999; stroke-width: 1; }
.watch { fill: none; stroke: #2a8f86; stroke-width: 1.2; stroke-dasharray: 5 3; }
.flight { fill: none; stroke: #b35c00; stroke-width: 1.2; stroke-dasharray: 2 3; }
.box { stroke: #444; stroke-width: 1; }
.head { font-weight: bold; }
.col { font-size: 13px; font-weight: bold; fill: #333; }
.small { font-size: 11px; fill: #444; }
</style>
"##,
    );
    let _ = writeln!(out, r##"<rect width="100%" height="100%" fill="white"/>"##);
    let _ = writeln!(
        out,
        r#"<text class="col" x="{TABLE_X}" y="22">{}</text>"#,
        esc(&p.title)
    );
    let _ = writeln!(
        out,
        r#"<text class="col" x="{TABLE_X}" y="40">descriptor tables</text>"#
    );
    let _ = writeln!(
        out,
        r#"<text class="col" x="{FILE_X}" y="40">open files</text>"#
    );
    let _ = writeln!(
        out,
        r#"<text class="col" x="{OBJ_X}" y="40">objects</text>"#
    );
    // Tables, and an arrow from each row to its file.
    for (t, &(x, y, h)) in p.tables.iter().zip(&l.tables) {
        let _ = writeln!(
            out,
            r##"<rect class="box" x="{x}" y="{y:.1}" width="{TABLE_W}" height="{h:.1}" rx="4" fill="#fafafa"/>"##
        );
        for (k, name) in t.processes.iter().enumerate() {
            let _ = writeln!(
                out,
                r#"<text class="head" x="{:.1}" y="{:.1}">{}</text>"#,
                x + 8.0,
                y + 14.0 + HEAD_LINE * k as f64,
                esc(&fit(name, TABLE_W - 50.0))
            );
        }
        let head = HEAD_LINE * t.processes.len().max(1) as f64 + 8.0;
        if t.processes.len() > 1 {
            let _ = writeln!(
                out,
                r#"<text class="small" x="{:.1}" y="{:.1}" text-anchor="end">shared</text>"#,
                x + TABLE_W - 8.0,
                y + 14.0
            );
        }
        for (k, r) in t.rows.iter().enumerate() {
            let ry = y + head + ROW_H * k as f64;
            let _ = writeln!(
                out,
                r##"<line x1="{x}" y1="{ry:.1}" x2="{:.1}" y2="{ry:.1}" stroke="#ccc"/>"##,
                x + TABLE_W
            );
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}">fd {}{}</text>"#,
                x + 10.0,
                ry + 15.0,
                r.fd,
                if r.cloexec { "  cloexec" } else { "" }
            );
            let (fx, fy) = l.files[r.file];
            arrow(
                &mut out,
                x + TABLE_W,
                ry + ROW_H / 2.0,
                fx,
                fy + FILE_H / 2.0,
                "ref",
            );
        }
    }
    // Files, and an arrow from each to its object.
    for (f, &(x, y)) in p.files.iter().zip(&l.files) {
        let _ = writeln!(
            out,
            r#"<rect class="box" x="{x}" y="{y:.1}" width="{FILE_W}" height="{FILE_H}" rx="4" fill="{}"/>"#,
            fill(f.kind)
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            x + 8.0,
            y + 16.0,
            esc(&fit(&f.title, FILE_W))
        );
        let mut detail = f.detail.clone();
        if !detail.is_empty() {
            detail.push_str(", ");
        }
        detail.push_str(&format!(
            "{} {}",
            f.slots,
            if f.slots == 1 { "slot" } else { "slots" }
        ));
        let _ = writeln!(
            out,
            r#"<text class="small" x="{:.1}" y="{:.1}">{}</text>"#,
            x + 8.0,
            y + 33.0,
            esc(&fit(&detail, FILE_W))
        );
        let (ox, oy) = l.objects[f.object];
        arrow(
            &mut out,
            x + FILE_W,
            y + FILE_H / 2.0,
            ox,
            oy + OBJ_H / 2.0,
            "obj",
        );
    }
    for (o, &(x, y)) in p.objects.iter().zip(&l.objects) {
        let _ = writeln!(
            out,
            r#"<rect class="box" x="{x}" y="{y:.1}" width="{OBJ_W}" height="{OBJ_H}" rx="12" fill="{}"/>"#,
            fill(o.kind)
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            x + 12.0,
            y + 19.0,
            esc(&fit(&o.label, OBJ_W))
        );
    }
    // An epoll's watches: from its object back to each file watched.
    for w in &p.watches {
        let (ox, oy) = l.objects[w.epoll];
        let (fx, fy) = l.files[w.file];
        let (x1, y1) = (ox + OBJ_W, oy + OBJ_H / 2.0);
        let (x2, y2) = (fx + FILE_W, fy + FILE_H * 0.75);
        let bulge = x1 + 40.0;
        let _ = writeln!(
            out,
            r#"<path class="watch" d="M {x1:.1} {y1:.1} C {bulge:.1} {y1:.1}, {bulge:.1} {y2:.1}, {x2:.1} {y2:.1}" marker-end="url(#head)"/>"#
        );
        let _ = writeln!(
            out,
            r##"<text class="small" x="{:.1}" y="{:.1}" fill="#2a8f86">watches as {}</text>"##,
            x2 + 6.0,
            y2 + 12.0,
            w.fd
        );
    }
    // Files in flight: from the socket end whose queue carries them, round
    // the left of the files' column; those no table holds, named under it.
    for f in &p.flights {
        let (sx, sy) = l.files[f.socket];
        let (fx, fy) = l.files[f.file];
        let (y1, y2) = (sy + FILE_H * 0.25, fy + FILE_H * 0.25);
        let bulge = sx - 40.0;
        let _ = writeln!(
            out,
            r#"<path class="flight" d="M {sx:.1} {y1:.1} C {bulge:.1} {y1:.1}, {bulge:.1} {y2:.1}, {fx:.1} {y2:.1}" marker-end="url(#head)"/>"#
        );
        let _ = writeln!(
            out,
            r##"<text class="small" x="{:.1}" y="{:.1}" fill="#b35c00" text-anchor="end">in flight</text>"##,
            sx - 4.0,
            y1 - 3.0
        );
    }
    for (socket, what) in &p.riding {
        let (x, y) = l.files[*socket];
        let _ = writeln!(
            out,
            r##"<text class="small" x="{:.1}" y="{:.1}" fill="#b35c00">{}</text>"##,
            x + 8.0,
            y + FILE_H + 11.0,
            esc(&fit(
                &format!("in flight here: {}", what.join(", ")),
                FILE_W + 60.0
            ))
        );
    }
    if !p.unheld.is_empty() {
        let list: Vec<String> = p.unheld.iter().map(|n| n.to_string()).collect();
        let _ = writeln!(
            out,
            r#"<text class="small" x="{OBJ_X}" y="{:.1}">watched under {}: a file no process holds</text>"#,
            l.height - 12.0,
            list.join(", ")
        );
    }
    out.push_str("</svg>\n");
    out
}
