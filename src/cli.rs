//! The command line: `fdlab run`, `check` and `fuzz`. It parses arguments,
//! calls the tools, and prints what they return through the render floor.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::backend::api::BackendError;
use crate::backend::linux::backend::helper_path;
use crate::backend::model::ModelBackend;
use crate::backend::registry::by_name;
use crate::lang;
use crate::render::{json, text};
use crate::tools::error::Error;
use crate::tools::{check, compare, fuzz, run};

#[derive(Parser)]
#[command(
    name = "fdlab",
    version,
    about = "Teaches and checks how operating systems keep file descriptors",
    long_about = "fdlab runs .fds scenarios (processes, descriptor tables, open files, \
                  SCM_RIGHTS, epoll) on a model of the BSD descriptor layer and on real \
                  Linux processes, prints what happened, strace style, with the resulting \
                  topology, and compares the two.\n\n\
                  Start with `fdlab check` (the built-in corpus on every backend) or \
                  `fdlab run scenarios/fork-shares-offset.fds --backend both`."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one scenario and print each call, failed expectations and the
    /// final topology. Exit 0 when every expectation holds (and, with
    /// `--backend both`, the backends agree), 1 otherwise, 2 when the
    /// scenario is invalid or a backend cannot run it.
    Run {
        /// The .fds file.
        file: PathBuf,
        /// Where to run it: the model, real Linux processes, or both in
        /// lockstep, compared step by step.
        #[arg(long, value_enum, default_value_t = BackendName::Model)]
        backend: BackendName,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
        /// Under each call, print the file(9) calls the model made, with
        /// each file's count before and after (model only).
        #[arg(long)]
        trace: bool,
        /// With `--backend both`: compare the topologies after every step,
        /// not only at the end.
        #[arg(long)]
        every_step: bool,
    },
    /// Generate random scenarios, run each on the model and on Linux in
    /// lockstep, and compare every step's result and topology. A
    /// disagreement shrinks to a minimal scenario, written as a .fds file
    /// whose expectations are Linux's answers. Exit 0 when all agree.
    Fuzz {
        /// How many scenarios.
        #[arg(long, default_value_t = 1000)]
        cases: u32,
        /// The random seed (default: from the clock; printed either way).
        #[arg(long)]
        seed: Option<u64>,
        /// The most operations per scenario.
        #[arg(long, default_value_t = 40)]
        len: usize,
        /// Where to write a minimal failing scenario.
        #[arg(long, default_value = "fuzz-failure.fds")]
        out: PathBuf,
    },
    /// Run the scenario corpus on every backend and print a table: one column
    /// per backend and whether model and Linux agree. Exit 0 when all pass
    /// and agree, 1 otherwise.
    Check {
        /// Scenario files or folders (default: the project's scenarios/).
        paths: Vec<PathBuf>,
        /// Print the rows as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendName {
    /// The model of the BSD descriptor layer (fdlab-model).
    Model,
    /// Real processes on this Linux kernel, observed with /proc and kcmp.
    Linux,
    /// Both, in lockstep: every step's result and the topologies compared.
    Both,
}

/// Runs the command line; returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run {
            file,
            backend,
            json,
            trace,
            every_step,
        } => run_one(&file, backend, json, trace, every_step),
        Cmd::Check { paths, json } => check_all(paths, json),
        Cmd::Fuzz {
            cases,
            seed,
            len,
            out,
        } => fuzz(cases, seed, len, &out),
    }
}

fn fuzz(cases: u32, seed: Option<u64>, len: usize, out: &PathBuf) -> ExitCode {
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    println!("fuzzing {cases} scenarios of up to {len} operations, seed {seed}");
    let r = fuzz::fuzz(cases, seed, len, &helper_path());
    if let Some(f) = &r.failure {
        if let Err(e) = std::fs::write(out, text::finding(f)) {
            eprintln!("fdlab: cannot write {}: {e}", out.display());
        }
    }
    print!("{}", text::fuzz_summary(&r, &out.display().to_string()));
    if r.failure.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("fdlab: {e}");
    ExitCode::from(2)
}

fn run_one(
    file: &PathBuf,
    backend: BackendName,
    json: bool,
    trace: bool,
    every_step: bool,
) -> ExitCode {
    let src = match std::fs::read_to_string(file) {
        Ok(s) => s,
        Err(e) => {
            return fail(Error::Io {
                path: file.display().to_string(),
                source: e,
            })
        }
    };
    let scenario = match lang::parse(&file.display().to_string(), &src) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if backend == BackendName::Both {
        let c = (|| -> Result<compare::Comparison, BackendError> {
            let mut l = by_name("linux")?;
            let m = Box::new(ModelBackend::deferred());
            compare::run_both(&scenario, m, l.as_mut(), every_step)
        })();
        let c = match c {
            Ok(c) => c,
            Err(e) => return fail(Error::from(e)),
        };
        return finish(json, &c, c.passed(), || text::comparison(&c));
    }
    let name = if backend == BackendName::Linux {
        "linux"
    } else {
        "model"
    };
    let report = by_name(name).and_then(|mut b| run::run(&scenario, b.as_mut(), trace));
    let report = match report {
        Ok(r) => r,
        Err(e) => return fail(Error::from(e)),
    };
    finish(json, &report, report.passed(), || text::report(&report))
}

/// Prints `value` as JSON, or `text()`, and exits 0 if `passed`, else 1.
fn finish<T: serde::Serialize>(
    json: bool,
    value: &T,
    passed: bool,
    text: impl FnOnce() -> String,
) -> ExitCode {
    if json {
        println!("{}", json::pretty(value));
    } else {
        print!("{}", text());
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn check_all(paths: Vec<PathBuf>, json: bool) -> ExitCode {
    let paths = if paths.is_empty() {
        let here = PathBuf::from("scenarios");
        vec![if here.is_dir() {
            here
        } else {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios")
        }]
    } else {
        paths
    };
    let mut files = Vec::new();
    for p in &paths {
        if p.is_dir() {
            match check::corpus(p) {
                Ok(f) => files.extend(f),
                Err(e) => return fail(e),
            }
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            return fail(format!("{}: no such file or folder", p.display()));
        }
    }
    if files.is_empty() {
        return fail("no .fds scenarios found");
    }
    let rows = check::check(&files);
    let passed = rows.iter().all(check::Row::passed);
    finish(json, &rows, passed, || text::check_table(&rows))
}
