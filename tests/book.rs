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
                target.starts_with("../../scenarios/"),
                "{name}: {target} is not a scenario"
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
