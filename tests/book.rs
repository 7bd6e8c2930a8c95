//! The book cannot drift from the corpus: every scenario it includes exists
//! (and so runs in `tests/scenarios.rs`), and every chapter is in SUMMARY.md.

use std::path::Path;

#[test]
fn book_includes_only_scenarios_that_exist() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src");
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).unwrap();
    let mut includes = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".md") || name == "SUMMARY.md" {
            continue;
        }
        assert!(
            summary.contains(&format!("({name})")),
            "{name} is not in SUMMARY.md"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        for part in text.split("{{#include ").skip(1) {
            let target = &part[..part.find("}}").expect("closed include")];
            assert!(
                target.starts_with("../../scenarios/") || target.starts_with("generated/"),
                "{name}: {target} is neither a scenario nor generated output"
            );
            assert!(
                src.join(target).is_file(),
                "{name}: {target} does not exist"
            );
            includes += 1;
        }
    }
    assert!(includes >= 2);
}

/// The language chapter is the repository's whole reference: every call of
/// the registry and every expectation form is in it.
#[test]
fn the_language_chapter_lists_every_call_and_expectation() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/language.md");
    let text = std::fs::read_to_string(src).unwrap();
    for c in fdlab_model::call::CALLS {
        assert!(
            text.contains(&format!("`P: {}", c.name)),
            "the language chapter does not show `{}`",
            c.name
        );
    }
    for (form, _) in fdlab::lang::EXPECTATIONS {
        assert!(
            text.contains(&format!("`{form}`")),
            "the language chapter does not show `{form}`"
        );
    }
}

/// A `|` inside a code span in a table row splits the cell in mdBook unless
/// it is escaped (`\|`): every row of a table has as many cells as its
/// header.
#[test]
fn book_tables_keep_their_columns() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src");
    let cells = |line: &str| {
        let b = line.as_bytes();
        (0..b.len())
            .filter(|&i| b[i] == b'|' && (i == 0 || b[i - 1] != b'\\'))
            .count()
    };
    let mut rows = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut header: Option<usize> = None;
        for (n, line) in text.lines().enumerate() {
            if !line.starts_with('|') {
                header = None;
                continue;
            }
            match header {
                None => header = Some(cells(line)),
                Some(h) => {
                    rows += 1;
                    assert_eq!(
                        cells(line),
                        h,
                        "{}:{}: a row with other cells than its header (an unescaped `|`?)",
                        path.display(),
                        n + 1
                    );
                }
            }
        }
    }
    assert!(rows > 20, "{rows} table rows");
}

/// Every scenario written out in the book (a `fds` code block, or the
/// corpus file it includes) parses and runs on the model with every
/// expectation holding.
#[test]
fn book_scenarios_run() {
    use fdlab::backend::ModelBackend;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src");
    let mut blocks = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for part in text.split("```fds\n").skip(1) {
            let mut code = part[..part.find("```").expect("closed block")].to_string();
            let mut name = path.display().to_string();
            if let Some(target) = code.trim().strip_prefix("{{#include ") {
                let file = src.join(target.trim_end_matches("}}"));
                name = file.display().to_string();
                code = std::fs::read_to_string(&file).unwrap();
            }
            let s = fdlab::lang::parse(&name, &code).unwrap_or_else(|e| panic!("{e}"));
            let r = fdlab::tools::run::run(&s, &mut ModelBackend::new(), false).unwrap();
            assert!(r.failures.is_empty(), "{name}: {:?}", r.failures);
            blocks += 1;
        }
    }
    assert!(blocks >= 1);
}

/// The README's first scenario, which a newcomer types, runs as it says.
#[test]
fn the_readme_first_scenario_runs() {
    use fdlab::backend::ModelBackend;
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("cat > first.fds <<'END'\n")
        .expect("the walk-through")
        + 24;
    let len = readme[start..].find("\nEND\n").expect("its end");
    let s = fdlab::lang::parse("first.fds", &readme[start..start + len + 1]).unwrap();
    let r = fdlab::tools::run::run(&s, &mut ModelBackend::new(), false).unwrap();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(r.expectations.len(), 1);
}

/// The output and the pictures the course shows are what fdlab prints:
/// each file of `book/src/generated/` is made again from its scenario
/// (`NAME.txt`: `fdlab run scenarios/NAME.fds`; `NAME.trace.txt`: with
/// `--trace`; `NAME.svg`: its `--svg`)
/// and compared. `FDLAB_BLESS=1 cargo test --test book` writes them
/// instead. Every generated file is shown by a chapter, and every one a
/// chapter shows exists.
#[test]
fn generated_output_is_what_fdlab_prints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("book/src");
    let generated = src.join("generated");
    let bless = std::env::var_os("FDLAB_BLESS").is_some();
    let mut shown = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        // `{{#include generated/NAME}}` and `![...](generated/NAME)`.
        for (opening, closing) in [("{{#include generated/", "}}"), ("](generated/", ")")] {
            for part in text.split(opening).skip(1) {
                let end = part.find(closing).expect("a closed reference");
                shown.insert(part[..end].to_string());
            }
        }
    }
    assert!(shown.len() >= 6, "{shown:?}");
    let tmp = std::env::temp_dir().join(format!("fdlab-book-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for name in &shown {
        let (stem, kind) = name.rsplit_once('.').expect("NAME.txt or NAME.svg");
        // NAME.trace.txt: with the file(9) calls under each call.
        let (stem, trace) = match stem.strip_suffix(".trace") {
            Some(s) => (s, true),
            None => (stem, false),
        };
        // NAME.linux.svg: as the Linux backend sees it (/proc and kcmp).
        let (stem, linux) = match stem.strip_suffix(".linux") {
            Some(s) => (s, true),
            None => (stem, false),
        };
        let scenario = root.join("scenarios").join(format!("{stem}.fds"));
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fdlab"));
        cmd.arg("run").arg(&scenario).current_dir(&tmp);
        if trace {
            cmd.arg("--trace");
        }
        if linux {
            cmd.args(["--backend", "linux"]);
        }
        let svg = tmp.join("picture.svg");
        if kind == "svg" {
            cmd.arg("--svg").arg(&svg);
        }
        let html = tmp.join("steps.html");
        if kind == "html" {
            cmd.arg("--html").arg(&html);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let made = match kind {
            "txt" => out.stdout,
            "svg" => std::fs::read(&svg).unwrap(),
            "html" => std::fs::read(&html).unwrap(),
            _ => panic!("{name}: only .txt, .svg and .html are generated"),
        };
        let file = generated.join(name);
        if bless {
            std::fs::write(&file, &made).unwrap();
        } else {
            let book = std::fs::read(&file).unwrap_or_default();
            assert!(
                book == made,
                "book/src/generated/{name} is not what fdlab prints now: \
                 FDLAB_BLESS=1 cargo test --test book makes it again"
            );
        }
    }
    std::fs::remove_dir_all(&tmp).unwrap();
    for entry in std::fs::read_dir(&generated).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            shown.contains(&name),
            "generated/{name}: no chapter shows it"
        );
    }
}

/// The course is eleven chapters, and each shows at least one picture that
/// fdlab draws and gives at least three exercises the kernel judges.
#[test]
fn every_course_chapter_has_a_picture_and_three_checked_exercises() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src");
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).unwrap();
    let course = summary
        .split("# The course")
        .nth(1)
        .and_then(|rest| rest.split("\n# ").next())
        .expect("a part called The course");
    let chapters: Vec<&str> = course
        .lines()
        .filter_map(|l| l.split_once("](")?.1.strip_suffix(')'))
        .collect();
    assert_eq!(chapters.len(), 11, "{chapters:?}");
    for chapter in chapters {
        let text = std::fs::read_to_string(src.join(chapter)).unwrap();
        assert!(
            text.contains("](generated/") && text.contains(".svg)"),
            "{chapter} shows no generated picture"
        );
        let exercises = fdlab::tools::exercise::EXERCISES
            .iter()
            .filter(|e| e.chapter == chapter)
            .count();
        assert!(
            exercises >= 3,
            "{chapter} has {exercises} checked exercises"
        );
    }
}
