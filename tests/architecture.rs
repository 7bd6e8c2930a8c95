//! The floor plan, checked: in every crate of the workspace, no module
//! imports a module that imports it back (directly or around a circle),
//! and every import runs down the crate's floors, never up.
//!
//! A module is a file (`a/b.rs` is `a::b`, `a/mod.rs` is `a`, `lib.rs` the
//! crate root). An import is any path into the crate in the module's code:
//! `use crate::x::Y`, `use super::z`, `crate::x::f()` in an expression. A
//! module root's `pub use` lines only re-export (they are not imports), and
//! a path through a re-export counts as an import of the module that
//! defines the name. Comments, doc links and the code after a file's
//! `#[cfg(test)]` test module are not imports (tests may look anywhere).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A crate: its source folder and its floors, lowest first. A module
/// belongs to the first floor one of whose prefixes names it or an
/// ancestor; every module must belong to one.
struct Crate {
    name: &'static str,
    src: &'static str,
    floors: &'static [&'static [&'static str]],
}

const CRATES: &[Crate] = &[
    Crate {
        name: "fdlab-model",
        src: "model/src",
        floors: &[
            // Leaves: values and containers that know no kernel object.
            &[
                "violation",
                "errno",
                "fd",
                "flags",
                "ids",
                "kind",
                "bitmap",
                "slab",
                "limits",
                "trace",
                "mutant",
            ],
            // The concurrent descriptor table.
            &["mt"],
            // Kernel objects, each in its own module, and the calls as values.
            &[
                "vnode", "pipe", "socket", "epoll", "eventfd", "pty", "waitq", "call",
            ],
            // The open file, the table as the world uses it, the process.
            &["file", "filedesc", "proc"],
            // The whole kernel state.
            &["world"],
            // The unix collector's marking and purging, the canonical
            // topology, and readiness: wake-ups and epoll's ready lists.
            &["gc", "topology", "poll"],
            // The file(9) API.
            &["descrip"],
            // Work finished later, and the states it leaves.
            &["deferred"],
            // What must hold between calls.
            &["invariants"],
            // The system calls and their dispatch; the unix socket calls.
            &["sys", "uipc", "jobctrl"],
            // Tests of the whole crate.
            &["tests", "crate"],
        ],
    },
    Crate {
        name: "fdlab-tracker",
        src: "tracker/src",
        floors: &[
            &["report", "sys"],
            &["key", "slot"],
            &["error"],
            &["dir"],
            &["inode"],
            &["books"],
            &["invariants"],
            &["handle"],
            &["tracker"],
            &["model"],
            &["crate"],
        ],
    },
    Crate {
        name: "fdlab",
        src: "src",
        floors: &[
            // The language.
            &["lang"],
            // The backends: the model, and Linux in one room.
            &["backend"],
            // The tools that drive them.
            &["tools"],
            // Everything printed goes through here.
            &["render"],
            // The command line.
            &["cli", "crate"],
        ],
    },
];

/// Module path of a file under `src` (`""` for the crate root).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" && stem != "main" {
        parts.push(stem.to_string());
    }
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file: comments, strings and the trailing test module
/// removed (a rough lexer, enough for the project's own sources).
fn code(text: &str) -> String {
    let cut = text
        .find("#[cfg(test)]\nmod tests")
        .or_else(|| text.find("#[cfg(test)]\nmod on_the_"))
        .unwrap_or(text.len());
    let mut out = String::new();
    let b: Vec<char> = text[..cut].chars().collect();
    let mut i = 0;
    while i < b.len() {
        if b[i] == '/' && b.get(i + 1) == Some(&'/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if b[i] == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == '\'' && b.get(i + 2) == Some(&'\'') {
            // A char literal such as '"'.
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Expands `use` trees: `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim().trim_end_matches("::");
        let inner = &tree[open + 1..tree.rfind('}').expect("closing brace")];
        let base = join(prefix, head);
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&base, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&base, &inner[start..], out);
    } else if !tree.is_empty() {
        let path = tree.split(" as ").next().unwrap_or(tree).trim();
        out.push(join(prefix, path));
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}::{b}"),
    }
}

/// Every path into the crate the code names, made absolute (`crate::` off).
fn paths(module: &str, is_root: bool, code: &str) -> (Vec<String>, Vec<String>) {
    let mut imports = Vec::new();
    let mut reexports = Vec::new();
    // `use` statements, whole.
    let mut rest = code;
    let mut plain = String::new();
    while let Some(at) = rest.find("use ") {
        let before = &rest[..at];
        let word_start =
            at == 0 || !rest[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        if !word_start {
            plain.push_str(&rest[..at + 4]);
            rest = &rest[at + 4..];
            continue;
        }
        plain.push_str(before);
        let end = rest[at..].find(';').map_or(rest.len(), |e| at + e);
        let stmt = &rest[at + 4..end];
        let is_pub = before.trim_end().ends_with("pub") || before.trim_end().ends_with(')');
        let mut out = Vec::new();
        expand("", stmt, &mut out);
        for p in out {
            if let Some(abs) = absolute(module, &p) {
                if is_pub && is_root {
                    reexports.push(abs);
                } else {
                    imports.push(abs);
                }
            }
        }
        rest = &rest[end..];
    }
    plain.push_str(rest);
    // Paths in expressions and types.
    for key in ["crate::", "super::"] {
        let mut s = plain.as_str();
        while let Some(at) = s.find(key) {
            let tail = &s[at..];
            let len = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            if let Some(abs) = absolute(module, tail[..len].trim_end_matches(':')) {
                imports.push(abs);
            }
            s = &s[at + key.len()..];
        }
    }
    (imports, reexports)
}

/// `p` as a path from the crate root, if it leads into the crate.
fn absolute(module: &str, p: &str) -> Option<String> {
    let mut parts: Vec<&str> = p.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
    match parts.first() {
        Some(&"crate") => {
            parts.remove(0);
            base.clear();
        }
        Some(&"super") => {
            while parts.first() == Some(&"super") {
                parts.remove(0);
                base.pop();
            }
        }
        Some(&"self") => {
            parts.remove(0);
        }
        // A child module (`use child::X`), or another crate: the caller
        // keeps it only if it names a module.
        _ => {}
    }
    base.extend(parts);
    Some(base.join("::"))
}

/// Whether `p` starts in a module of the crate (and not in another crate).
fn is_module_path(p: &str, modules: &BTreeSet<String>) -> bool {
    let first = p.split("::").next().unwrap_or("");
    p.is_empty() || first.is_empty() || modules.contains(first)
}

/// The module a path leads into: the longest prefix that is a module,
/// through the re-exports of the modules on the way.
fn resolve(p: &str, modules: &BTreeSet<String>, reexp: &BTreeMap<String, String>) -> String {
    let mut p = p.to_string();
    for _ in 0..8 {
        let parts: Vec<&str> = p.split("::").collect();
        let mut best = String::new();
        let mut used = 0;
        for n in (0..=parts.len()).rev() {
            let cand = parts[..n].join("::");
            if modules.contains(&cand) {
                best = cand;
                used = n;
                break;
            }
        }
        // A name re-exported by that module: follow it.
        if used < parts.len() {
            let name = join(&best, parts[used]);
            if let Some(target) = reexp.get(&name) {
                let rest = parts[used + 1..].join("::");
                p = join(target, &rest);
                continue;
            }
        }
        return best;
    }
    p
}

fn floor(c: &Crate, module: &str) -> Option<usize> {
    let name = if module.is_empty() { "crate" } else { module };
    c.floors.iter().position(|f| {
        f.iter()
            .any(|&pre| name == pre || name.starts_with(&format!("{pre}::")))
    })
}

/// The edges of a crate's module graph: module -> modules it imports.
fn graph(c: &Crate) -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join(c.src);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut parsed = Vec::new();
    let mut reexp: BTreeMap<String, String> = BTreeMap::new();
    for f in &files {
        let m = module_of(&src, f);
        let name = f.file_name().unwrap().to_string_lossy();
        let is_root = matches!(name.as_ref(), "lib.rs" | "mod.rs" | "main.rs");
        let text = std::fs::read_to_string(f).unwrap();
        let (imports, reexports) = paths(&m, is_root, &code(&text));
        for r in reexports {
            if !is_module_path(&r, &modules) {
                continue;
            }
            let leaf = r.rsplit("::").next().unwrap_or(&r).to_string();
            if leaf != "*" {
                reexp.insert(join(&m, &leaf), r);
            }
        }
        parsed.push((m, imports));
    }
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, imports) in parsed {
        let e = g.entry(m.clone()).or_default();
        for p in imports {
            if !is_module_path(&p, &modules) {
                continue;
            }
            let target = resolve(&p, &modules, &reexp);
            // A module's own items are not an import.
            if target != m {
                e.insert(target);
            }
        }
    }
    g
}

/// The circles of `g`, each as the modules around it.
fn circles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Tarjan's strongly connected components.
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        if let Some(ws) = t.g.get(v) {
            for w in ws {
                let w = w.as_str();
                if !t.g.contains_key(w) {
                    continue;
                }
                if !t.index.contains_key(w) {
                    visit(t, w);
                    let lw = t.low[w];
                    let lv = t.low[v];
                    t.low.insert(v, lv.min(lw));
                } else if t.on.contains(w) {
                    let iw = t.index[w];
                    let lv = t.low[v];
                    t.low.insert(v, lv.min(iw));
                }
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            let self_loop = t.g.get(v).is_some_and(|ws| ws.contains(v));
            if comp.len() > 1 || self_loop {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn shown(m: &str) -> &str {
    if m.is_empty() {
        "crate"
    } else {
        m
    }
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let mut problems = Vec::new();
    for c in CRATES {
        for comp in circles(&graph(c)) {
            let g = graph(c);
            let mut edges = Vec::new();
            for a in &comp {
                for b in &g[a] {
                    if comp.contains(b) {
                        edges.push(format!("{} -> {}", shown(a), shown(b)));
                    }
                }
            }
            problems.push(format!("{}: a circle: {}", c.name, edges.join(", ")));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn imports_run_down_the_floors() {
    let mut problems = Vec::new();
    for c in CRATES {
        for (m, imports) in graph(c) {
            let Some(from) = floor(c, &m) else {
                problems.push(format!("{}: {} is on no floor", c.name, shown(&m)));
                continue;
            };
            for t in imports {
                match floor(c, &t) {
                    Some(to) if to > from => problems.push(format!(
                        "{}: {} (floor {from}) imports {} (floor {to}), above it",
                        c.name,
                        shown(&m),
                        shown(&t)
                    )),
                    _ => {}
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The checker finds what it is for: a planted circle and a planted
/// import up a floor.
#[test]
fn the_checker_sees_circles() {
    let g: BTreeMap<String, BTreeSet<String>> = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["c".to_string()])),
        ("c".to_string(), BTreeSet::from(["a".to_string()])),
        ("d".to_string(), BTreeSet::from(["a".to_string()])),
    ]);
    assert_eq!(circles(&g), vec![vec!["a", "b", "c"]]);
    let (imports, reexports) = paths(
        "x::y",
        false,
        &code("use crate::{a::B, c::{d, E}};\nuse super::z; // crate::q\nfn f() { crate::w::g() }"),
    );
    assert_eq!(imports, ["a::B", "c::d", "c::E", "x::z", "w::g"]);
    assert!(reexports.is_empty());
    // And it sees the real imports: a few known edges of each crate,
    // through `use`, `super::`, a path in an expression and a re-export.
    let known = [
        ("fdlab-model", "sys", "descrip"),
        ("fdlab-model", "mt::filedesc", "mt::guard"),
        ("fdlab-model", "descrip", "fd"),
        ("fdlab-tracker", "handle", "books"),
        ("fdlab", "render::text", "tools::run"),
        ("fdlab", "backend::linux::backend", "backend::api"),
    ];
    for (krate, from, to) in known {
        let c = CRATES.iter().find(|c| c.name == krate).unwrap();
        let g = graph(c);
        assert!(
            g.get(from).is_some_and(|e| e.contains(to)),
            "{krate}: {from} -> {to} not seen: {:?}",
            g.get(from)
        );
    }
}
