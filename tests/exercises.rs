//! The book's exercises: every solution is right by the kernel's judgement
//! (and the model's), every exercise can say "not yet", and the command
//! line gives a student the task and the verdict.

mod support;

use fdlab::tools::exercise::{judge, EXERCISES};
use support::{fdlab_in, repo};

#[test]
fn every_solution_is_right_on_linux_and_the_model() {
    for ex in EXERCISES {
        let v = judge(ex, "solution.fds", ex.solution).unwrap();
        assert!(v.right, "{}: {:?}", ex.name, v.findings);
        assert!(
            v.model_differs.is_empty(),
            "{}: {:?}",
            ex.name,
            v.model_differs
        );
    }
}

/// An answer that does nothing fails a task to write a scenario; a
/// prediction with its last answer changed fails a task to predict.
#[test]
fn every_exercise_can_say_not_yet() {
    for ex in EXERCISES {
        let wrong = if ex.predicts() {
            let mut lines: Vec<&str> = ex.solution.lines().collect();
            let last = lines.pop().unwrap();
            let (call, _) = last.split_once(" = ").unwrap();
            let changed = format!("{call} = 4242");
            lines.push(&changed);
            lines.join("\n")
        } else {
            "spawn p\n".to_string()
        };
        let v = judge(ex, "wrong.fds", &wrong).unwrap();
        assert!(!v.right, "{}: a wrong answer was right", ex.name);
        assert!(!v.findings.is_empty(), "{}", ex.name);
    }
}

/// Each file of `exercises/` is an exercise fdlab knows, with a solution,
/// and each exercise's chapter names it.
#[test]
fn every_exercise_is_built_in_and_in_its_chapter() {
    let mut files: Vec<String> = std::fs::read_dir(repo("exercises"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".fds") && !n.ends_with(".solution.fds"))
        .map(|n| n.trim_end_matches(".fds").to_string())
        .collect();
    files.sort();
    let mut known: Vec<String> = EXERCISES.iter().map(|e| e.name.to_string()).collect();
    known.sort();
    assert_eq!(files, known);
    for ex in EXERCISES {
        let chapter = std::fs::read_to_string(repo("book/src").join(ex.chapter)).unwrap();
        assert!(
            chapter.contains(&format!("--exercise {}", ex.name)),
            "{} does not give exercise {}",
            ex.chapter,
            ex.name
        );
    }
}

#[test]
fn the_command_line_gives_the_task_and_the_verdict() {
    let dir = support::TempDir::new("exercise");
    let fdlab = |args: &[&str]| fdlab_in(dir.path(), args);
    let (code, task, _) = fdlab(&["check", "--exercise", "one-offset-two-numbers"]);
    assert_eq!(code, 0);
    assert!(task.contains("descriptors 3 and 4"), "{task}");
    assert!(
        !task.contains("expect"),
        "the task gives the conditions away: {task}"
    );
    let answer = dir.file(
        "a.fds",
        "spawn p stdio\np: open f O_RDWR|O_CREAT = 3\np: dup 3 = 4\np: dup 3 = 5\n",
    );
    let a = answer.to_str().unwrap();
    let (code, out, _) = fdlab(&["check", "--exercise", "one-offset-two-numbers", a, "--json"]);
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["right"], false);
    assert!(
        v["findings"][0].as_str().unwrap().contains("differs"),
        "{v}"
    );
    let bad = dir.file("b.fds", "spawn p\np: open\n");
    let (code, _, err) = fdlab(&[
        "check",
        "--exercise",
        "one-offset-two-numbers",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("b.fds:2:"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let (code, _, err) = fdlab(&["check", "--exercise", "no-such"]);
    assert_eq!(code, 2);
    assert!(err.contains("--exercise list"), "{err}");
}
