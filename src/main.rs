//! The `fdlab` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use fdlab::backend::{self, Backend};
use fdlab::{check, lang, run, Error};

#[derive(Parser)]
#[command(
    name = "fdlab",
    version,
    about = "Teaches and checks how operating systems keep file descriptors",
    long_about = "fdlab runs .fds scenarios (processes, descriptor tables, open files, \
                  SCM_RIGHTS, epoll) on a model of the BSD descriptor layer and prints \
                  what happened, strace style, with the resulting topology.\n\n\
                  Start with `fdlab check` (the built-in corpus) or \
                  `fdlab run scenarios/fork-shares-offset.fds --trace`."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one scenario and print each call, failed expectations and the
    /// final topology. Exit 0 when every expectation holds, 1 when one
    /// fails, 2 when the scenario is invalid.
    Run {
        /// The .fds file.
        file: PathBuf,
        /// Where to run it.
        #[arg(long, value_enum, default_value_t = BackendName::Model)]
        backend: BackendName,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
        /// Under each call, print the file(9) calls the model made, with
        /// each file's count before and after.
        #[arg(long)]
        trace: bool,
    },
    /// Run the scenario corpus on every backend and print a table. Exit 0
    /// when all pass, 1 otherwise.
    Check {
        /// Scenario files or folders (default: the project's scenarios/).
        paths: Vec<PathBuf>,
        /// Print the rows as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendName {
    /// The model of the BSD descriptor layer (fdlab-model).
    Model,
}

impl BackendName {
    fn make(self) -> Box<dyn Backend> {
        let name = match self {
            BackendName::Model => "model",
        };
        // Every BackendName has an entry in backend::ALL.
        backend::by_name(name).expect("a known backend")
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run {
            file,
            backend,
            json,
            trace,
        } => run_one(&file, backend, json, trace),
        Cmd::Check { paths, json } => check_all(paths, json),
    }
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("fdlab: {e}");
    ExitCode::from(2)
}

fn run_one(file: &PathBuf, backend: BackendName, json: bool, trace: bool) -> ExitCode {
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
    let report = match run::run(&scenario, backend.make().as_mut(), trace) {
        Ok(r) => r,
        Err(e) => return fail(Error::from(e)),
    };
    if json {
        // A report is plain data: serializing it cannot fail.
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        );
    } else {
        print!("{}", run::render_text(&report));
    }
    if report.passed() {
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
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialize")
        );
    } else {
        print!("{}", check::render(&rows));
    }
    if rows.iter().all(|r| r.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
