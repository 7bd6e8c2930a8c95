//! Every scenario of the corpus runs in `cargo test`, on every backend; the
//! fixtures that must fail do fail, at the line they say; the invalid ones
//! are rejected at the line and column they say, before anything runs.

mod support;

use fdlab::backend::ModelBackend;
use fdlab::backend::ALL;
use fdlab::lang::parse;
use fdlab::tools::check::corpus;
use fdlab::tools::run::run;

use support::repo as dir;

/// The number in a header comment `# KEY: N` or `# KEY: N:M`.
fn header(src: &str, key: &str) -> Option<String> {
    src.lines()
        .filter_map(|l| l.strip_prefix('#'))
        .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
}

#[test]
fn corpus_is_large_and_passes_on_every_backend() {
    let files = corpus(&dir("scenarios")).unwrap();
    assert!(files.len() >= 30, "only {} scenarios", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let src = std::fs::read_to_string(path).unwrap();
        let s = parse(&path.display().to_string(), &src).unwrap_or_else(|e| panic!("{e}"));
        for &(name, make) in ALL {
            let mut b = make().unwrap_or_else(|e| panic!("{name} cannot start: {e}"));
            let r = run(&s, b.as_mut(), false).unwrap();
            for f in &r.failures {
                failures.push(format!(
                    "{} on {name}: line {}: {}",
                    path.display(),
                    f.line,
                    f.message
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn corpus_leaves_a_consistent_model() {
    for path in corpus(&dir("scenarios")).unwrap() {
        let src = std::fs::read_to_string(&path).unwrap();
        let s = parse("x", &src).unwrap();
        let mut b = ModelBackend::new();
        run(&s, &mut b, false).unwrap();
        if let Err(v) = fdlab_model::invariants::check_all(b.world()) {
            panic!("{}: {v}", path.display());
        }
    }
}

#[test]
fn failing_fixtures_fail_where_they_say() {
    let files = corpus(&dir("tests/fixtures/failing")).unwrap();
    assert!(!files.is_empty());
    for path in files {
        let src = std::fs::read_to_string(&path).unwrap();
        let line: usize = header(&src, "fails at line:")
            .unwrap_or_else(|| panic!("{}: no `# fails at line: N` header", path.display()))
            .parse()
            .unwrap();
        let s = parse("x", &src).unwrap();
        let r = run(&s, &mut ModelBackend::new(), false).unwrap();
        assert_eq!(
            r.failures.first().map(|f| f.line),
            Some(line),
            "{}: {:?}",
            path.display(),
            r.failures
        );
    }
}

#[test]
fn invalid_fixtures_are_rejected_where_they_say() {
    let files = corpus(&dir("tests/fixtures/invalid")).unwrap();
    assert!(files.len() >= 6);
    for path in files {
        let src = std::fs::read_to_string(&path).unwrap();
        let at = header(&src, "error at:")
            .unwrap_or_else(|| panic!("{}: no `# error at: L:C` header", path.display()));
        let e = parse("f.fds", &src).expect_err(&path.display().to_string());
        assert_eq!(
            format!("{}:{}", e.line, e.col),
            at,
            "{}: {e}",
            path.display()
        );
    }
}

/// The corpus, not an assertion inside the model, says what `exec` does
/// to a shared table: with a planted `exec` that forgets to unshare, the
/// scenarios about it fail at their expectations.
#[test]
fn the_corpus_says_exec_unshares_a_shared_table() {
    use fdlab_model::mutant::Mutant;
    for name in ["exec-unshares-table.fds", "exec-unshares-no-cloexec.fds"] {
        let path = dir("scenarios").join(name);
        let s = parse(name, &std::fs::read_to_string(&path).unwrap()).unwrap();
        let honest = run(&s, &mut ModelBackend::new(), false).unwrap();
        assert!(honest.failures.is_empty(), "{name}: {:?}", honest.failures);
        let mut m = ModelBackend::new();
        m.world_mut().plant(Mutant::ExecKeepsShared);
        let planted = run(&s, &mut m, false).unwrap();
        let failed: Vec<&str> = planted
            .expectations
            .iter()
            .filter(|e| !e.passed)
            .map(|e| e.text.as_str())
            .collect();
        assert!(failed.contains(&"expect t apart p"), "{name}: {failed:?}");
    }
}
