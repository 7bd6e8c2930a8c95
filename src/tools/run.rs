//! The interpreter: runs a [`Scenario`] on any [`Backend`] and reports each
//! step, each expectation and the final topology.

use fdlab_model::trace::TraceEvent;
use fdlab_model::{Events, Outcome, Ret, Topology};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::backend::api::{Backend, BackendError, FileRelation, WatchRelation};
use crate::lang::print::{call_args, call_strace, expectation_text, expected_text, outcome_text};
use crate::lang::text::json_text;
use crate::lang::{Expectation, Expected, Scenario, Stmt, StmtKind};

/// One call that ran.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub line: usize,
    pub proc: String,
    pub call: String,
    pub args: Vec<String>,
    #[serde(serialize_with = "ser_outcome")]
    pub result: Outcome,
    #[serde(serialize_with = "ser_expected")]
    pub expected: Option<Expected>,
    pub passed: bool,
    /// What the backend did underneath (`--trace`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trace: Vec<TraceEvent>,
    /// The call in strace style, for the text output.
    #[serde(skip)]
    pub strace: String,
}

/// One `expect` statement and what was seen.
#[derive(Debug, Clone, Serialize)]
pub struct ExpectationResult {
    pub line: usize,
    pub text: String,
    pub passed: bool,
    pub seen: String,
}

/// A failed expectation (of a call's result or an `expect`).
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub line: usize,
    pub message: String,
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub backend: String,
    pub steps: Vec<Step>,
    pub expectations: Vec<ExpectationResult>,
    pub topology: Topology,
    pub failures: Vec<Failure>,
    /// `spawn` statements, for the text output (they are not calls).
    #[serde(skip)]
    pub spawns: Vec<Spawned>,
    /// With `--trace` on the model: the trace's name (`file#N`) of each
    /// file of the topology, by its id.
    #[serde(skip)]
    pub trace_names: Vec<u64>,
}

/// A `spawn` statement that ran.
#[derive(Debug, Clone)]
pub struct Spawned {
    pub line: usize,
    pub name: String,
    pub stdio: bool,
    /// What the backend did underneath (`--trace`).
    pub trace: Vec<TraceEvent>,
}

impl Report {
    /// An empty report of backend `name`.
    pub fn new(name: &str) -> Report {
        Report {
            backend: name.to_string(),
            steps: Vec::new(),
            expectations: Vec::new(),
            topology: Topology {
                processes: vec![],
                tables: vec![],
                files: vec![],
            },
            failures: Vec::new(),
            spawns: Vec::new(),
            trace_names: Vec::new(),
        }
    }

    /// Runs one statement on `backend` and records it.
    ///
    /// Errors: only what the backend itself could not do; failed
    /// expectations go in the report.
    pub fn exec(&mut self, backend: &mut dyn Backend, stmt: &Stmt) -> Result<(), BackendError> {
        let r = self;
        match &stmt.kind {
            StmtKind::Spawn { name, stdio } => {
                backend.spawn(name, *stdio)?;
                r.spawns.push(Spawned {
                    line: stmt.line,
                    name: name.clone(),
                    stdio: *stdio,
                    trace: backend.take_trace(),
                });
            }
            StmtKind::Call {
                proc,
                call,
                expected,
            } => {
                let result = backend.call(proc, call)?;
                let passed = expected.as_ref().is_none_or(|e| e.matches(&result));
                if !passed {
                    let e = expected.as_ref().map(expected_text).unwrap_or_default();
                    r.failures.push(Failure {
                        line: stmt.line,
                        message: format!(
                            "{proc}: {}: expected = {e}, got = {}",
                            call_strace(call),
                            outcome_text(&result)
                        ),
                    });
                }
                r.steps.push(Step {
                    line: stmt.line,
                    proc: proc.clone(),
                    call: call.name().to_string(),
                    args: call_args(call),
                    result,
                    expected: expected.clone(),
                    passed,
                    trace: backend.take_trace(),
                    strace: call_strace(call),
                });
            }
            StmtKind::Expect(e) => {
                let (passed, seen) = check(backend, e)?;
                let text = expectation_text(e);
                if !passed {
                    r.failures.push(Failure {
                        line: stmt.line,
                        message: format!("{text}: {seen}"),
                    });
                }
                r.expectations.push(ExpectationResult {
                    line: stmt.line,
                    text,
                    passed,
                    seen,
                });
            }
        }
        Ok(())
    }

    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

fn ser_outcome<S: Serializer>(o: &Outcome, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(1))?;
    match o {
        Ok(Ret::Ints(v)) => m.serialize_entry("ok", v)?,
        Ok(Ret::Truncated(v)) => {
            m.serialize_entry("ok", v)?;
            m.serialize_entry("flags", &["MSG_CTRUNC"])?;
        }
        Ok(Ret::Bytes(b)) => m.serialize_entry("ok", &json_text(b))?,
        Ok(Ret::Flags(f)) => m.serialize_entry("ok", &f.status_string())?,
        Ok(Ret::Ready(v)) => m.serialize_entry("ok", &ready_json(v))?,
        Err(e) => m.serialize_entry("err", e.name())?,
    }
    m.end()
}

/// `[{"fd": 3, "events": "EPOLLIN"}]`.
fn ready_json(v: &[(i64, Events)]) -> Vec<serde_json::Value> {
    v.iter()
        .map(|(fd, e)| serde_json::json!({"fd": fd, "events": e.to_string()}))
        .collect()
}

fn ser_expected<S: Serializer>(e: &Option<Expected>, s: S) -> Result<S::Ok, S::Error> {
    let Some(e) = e else {
        return s.serialize_none();
    };
    let mut m = s.serialize_map(Some(1))?;
    match e {
        Expected::Ints(v) => m.serialize_entry("ok", v)?,
        Expected::Truncated(v) => {
            m.serialize_entry("ok", v)?;
            m.serialize_entry("flags", &["MSG_CTRUNC"])?;
        }
        Expected::Text(b) => m.serialize_entry("ok", &json_text(b))?,
        Expected::Flags(f) => m.serialize_entry("ok", &f.status_string())?,
        Expected::Ready(v) => m.serialize_entry("ok", &ready_json(v))?,
        // Any successful result.
        Expected::Ok => m.serialize_entry("ok", &())?,
        Expected::Errno(e) => m.serialize_entry("err", e.name())?,
    }
    m.end()
}

/// Runs a scenario one statement at a time on one backend, recording the
/// report as it goes (so that two backends can run in lockstep).
pub struct Runner<'b> {
    backend: &'b mut dyn Backend,
    report: Report,
    trace: bool,
}

impl<'b> Runner<'b> {
    /// With `trace`, each step records what the backend did underneath.
    pub fn new(backend: &'b mut dyn Backend, trace: bool) -> Runner<'b> {
        backend.set_tracing(trace);
        let report = Report::new(backend.name());
        Runner {
            backend,
            report,
            trace,
        }
    }

    /// The backend, for queries between statements.
    pub fn backend(&mut self) -> &mut dyn Backend {
        self.backend
    }

    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Runs one statement (see [`Report::exec`]).
    pub fn exec(&mut self, stmt: &Stmt) -> Result<(), BackendError> {
        self.report.exec(self.backend, stmt)
    }

    /// Takes the final topology and returns the report.
    pub fn finish(mut self) -> Result<Report, BackendError> {
        self.report.topology = self.backend.topology()?;
        if self.trace {
            if let Some(w) = self.backend.world() {
                self.report.trace_names = w.topology_serials();
            }
        }
        Ok(self.report)
    }
}

/// The topology after a statement: one frame of a scenario's film.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The statement's line.
    pub line: usize,
    pub topology: Topology,
    /// The files in flight then, where the backend can tell.
    pub flights: Vec<Flight>,
}

/// Files in flight in one socket's queue, riding there until a `recvmsg`
/// takes them: a picture draws them. By the topology's file ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flight {
    /// The socket end whose queue holds them.
    pub socket: usize,
    /// Those that some table holds too.
    pub files: Vec<usize>,
    /// What the others are (no descriptor names them: only the message
    /// keeps them alive).
    pub unheld: Vec<String>,
}

/// The files in flight in `w`'s sockets whose own file the topology has.
pub fn flights(w: &fdlab_model::World) -> Vec<Flight> {
    use fdlab_model::file::FileKind;
    let topology_id: std::collections::HashMap<u64, usize> = w
        .topology_serials()
        .into_iter()
        .enumerate()
        .map(|(i, serial)| (serial, i))
        .collect();
    let id_of = |f: fdlab_model::FileId| topology_id.get(&w.file(f).serial).copied();
    let mut out = Vec::new();
    for (sid, sock) in w.sockets() {
        let riding: Vec<fdlab_model::FileId> = sock
            .queue
            .iter()
            .flat_map(|m| m.fds.iter().copied())
            .collect();
        if riding.is_empty() {
            continue;
        }
        let own = w
            .files()
            .find(|(_, f)| matches!(f.kind, FileKind::Socket(s) if s == sid))
            .and_then(|(f, _)| id_of(f));
        let Some(socket) = own else { continue };
        let mut flight = Flight {
            socket,
            files: Vec::new(),
            unheld: Vec::new(),
        };
        for f in riding {
            match id_of(f) {
                Some(id) => flight.files.push(id),
                None => flight.unheld.push(match &w.file(f).kind {
                    FileKind::Socket(s) => format!("a {} socket", w.sock(*s).ty),
                    FileKind::Pipe(_, end) => format!("a pipe's {end} end"),
                    FileKind::Vnode(v) => w.fs().vnode(*v).path.clone(),
                    FileKind::Epoll(_) => "an epoll instance".into(),
                    FileKind::Eventfd(_) => "an eventfd".into(),
                    FileKind::PtyMaster(_) => "a pty master".into(),
                    FileKind::PtySlave(_) => "a pty slave".into(),
                    FileKind::Larval => "a larval file".into(),
                }),
            }
        }
        out.push(flight);
    }
    out.sort_by_key(|f| f.socket);
    out
}

/// The files in flight in `b`'s queues now, by the ids of `t`, its
/// topology now: the model knows them; Linux's are found by a dump, which
/// peeks every queue (a few milliseconds: done only for pictures).
///
/// Errors: Linux's processes could not be read.
pub fn flights_now(b: &mut dyn Backend, t: &Topology) -> Result<Vec<Flight>, BackendError> {
    if let Some(w) = b.world() {
        return Ok(flights(w));
    }
    let linux = b
        .as_any_mut()
        .and_then(|a| a.downcast_mut::<crate::backend::LinuxBackend>());
    let Some(l) = linux else {
        return Ok(Vec::new());
    };
    // Paths relative to the sandbox, as the model names them.
    let sandbox = l.sandbox().to_path_buf();
    let img = crate::tools::dump::from_backend(l, Some(&sandbox))?;
    Ok(flights_of_image(&img, t))
}

/// The files in flight in the queues of `img` (a dump, which peeks every
/// queue), by the ids of `t`, the topology of the same processes: what a
/// picture of a Linux run draws. A file is matched to `t` by a descriptor
/// that names it, in a process of the same name.
pub fn flights_of_image(img: &crate::tools::image::Image, t: &Topology) -> Vec<Flight> {
    use crate::tools::image::Object;
    let mut held: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    for p in &img.processes {
        let Some(view) = t.processes.iter().find(|v| v.name == p.name) else {
            continue;
        };
        for d in img
            .tables
            .iter()
            .filter(|tb| tb.id == p.table)
            .flat_map(|tb| &tb.fds)
        {
            if let Some(v) = view.fds.iter().find(|v| v.fd == d.fd) {
                held.entry(d.file).or_insert(v.file);
            }
        }
    }
    let unheld = |f: usize| -> String {
        let Some(file) = img.files.iter().find(|x| x.id == f) else {
            return "a file".into();
        };
        match &file.object {
            Object::Socket { pair, .. } => img
                .pairs
                .iter()
                .find(|x| x.id == *pair)
                .map_or_else(|| "a socket".into(), |x| format!("a {} socket", x.ty)),
            Object::Unix { ty, .. } => format!("a {ty} socket"),
            Object::Pipe { end, .. } => format!("a pipe's {end} end"),
            Object::Regular { path, .. } | Object::Directory { path, .. } => path.clone(),
            Object::Chardev { pty: Some(_), .. } => "a pty master".into(),
            Object::Chardev { path, .. } => path.clone(),
            Object::PtySlave { .. } => "a pty slave".into(),
            Object::Epoll { .. } => "an epoll instance".into(),
            Object::Eventfd { .. } => "an eventfd".into(),
            Object::Other { what } => what.clone(),
        }
    };
    let mut out = Vec::new();
    for file in &img.files {
        let queued: Vec<usize> = match &file.object {
            Object::Socket { pair, end } => img
                .pairs
                .iter()
                .filter(|x| x.id == *pair)
                .filter_map(|x| x.queued.get(*end))
                .flatten()
                .flat_map(|m| m.files.iter().copied())
                .collect(),
            Object::Unix { queued, .. } => queued
                .iter()
                .flat_map(|m| m.files.iter().copied())
                .collect(),
            _ => continue,
        };
        let Some(&socket) = held.get(&file.id) else {
            continue;
        };
        if queued.is_empty() {
            continue;
        }
        let mut flight = Flight {
            socket,
            files: Vec::new(),
            unheld: Vec::new(),
        };
        for f in queued {
            match held.get(&f) {
                Some(&id) => flight.files.push(id),
                None => flight.unheld.push(unheld(f)),
            }
        }
        out.push(flight);
    }
    out.sort_by_key(|f| f.socket);
    out
}

/// [`run`], also taking the topology after every statement that is not an
/// expectation (expectations change nothing): what `--html` shows.
///
/// Errors: as [`run`].
pub fn run_frames(
    scenario: &Scenario,
    backend: &mut dyn Backend,
    trace: bool,
) -> Result<(Report, Vec<Frame>), BackendError> {
    let mut r = Runner::new(backend, trace);
    let mut frames = Vec::new();
    for stmt in &scenario.stmts {
        r.exec(stmt)?;
        if !matches!(stmt.kind, StmtKind::Expect(_)) {
            let topology = r.backend().topology()?;
            let flights = flights_now(r.backend(), &topology)?;
            frames.push(Frame {
                line: stmt.line,
                topology,
                flights,
            });
        }
    }
    Ok((r.finish()?, frames))
}

/// Runs `scenario` on `backend`. With `trace`, each step records what the
/// backend did underneath.
///
/// Errors: only what the backend itself could not do; failed expectations
/// are in the report.
pub fn run(
    scenario: &Scenario,
    backend: &mut dyn Backend,
    trace: bool,
) -> Result<Report, BackendError> {
    let mut r = Runner::new(backend, trace);
    for stmt in &scenario.stmts {
        r.exec(stmt)?;
    }
    r.finish()
}

/// Evaluates an expectation: whether it holds and what was seen.
fn check(b: &mut dyn Backend, e: &Expectation) -> Result<(bool, String), BackendError> {
    let name = |p: &(String, i32)| format!("{}:{}", p.0, p.1);
    Ok(match e {
        Expectation::Ctty { proc, of } => {
            let t = b.topology()?;
            let view = |p: &str| t.processes.iter().find(|v| v.name == p);
            let has = view(proc).and_then(|v| v.ctty);
            let seen = match has {
                None => "no controlling terminal".to_string(),
                Some(t) => format!("pty {t}"),
            };
            match of {
                None => (has.is_none(), seen),
                Some(q) => {
                    let file = view(&q.0)
                        .and_then(|v| v.fds.iter().find(|d| i64::from(d.fd) == i64::from(q.1)))
                        .map(|d| &t.files[d.file]);
                    match file {
                        None => (false, format!("{} is not open", name(q))),
                        Some(f) => (has.is_some() && has == f.pty, seen),
                    }
                }
            }
        }
        Expectation::File { a, b: other, same } => {
            match b.file_relation((&a.0, a.1), (&other.0, other.1))? {
                FileRelation::NotOpen(i) => (false, format!("{} is not open", name([a, other][i]))),
                FileRelation::Same => (*same, "the same open file".into()),
                FileRelation::Differs => (!*same, "different open files".into()),
            }
        }
        Expectation::Object { a, b: other, same } => {
            match b.object_relation((&a.0, a.1), (&other.0, other.1))? {
                FileRelation::NotOpen(i) => (false, format!("{} is not open", name([a, other][i]))),
                FileRelation::Same => (*same, "one object".into()),
                FileRelation::Differs => (!*same, "different objects".into()),
            }
        }
        Expectation::Table {
            a,
            b: other,
            shares,
        } => {
            let s = b.same_table(a, other)?;
            (
                s == *shares,
                if s {
                    "one shared table".into()
                } else {
                    "separate tables".into()
                },
            )
        }
        Expectation::Fds { proc, fds } => {
            let got = b.open_fds(proc)?;
            let mut want = fds.clone();
            want.sort_unstable();
            want.dedup();
            let seen = if got.is_empty() {
                "no descriptors open".to_string()
            } else {
                format!(
                    "open: {}",
                    got.iter()
                        .map(|f| f.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            };
            (got == want, seen)
        }
        Expectation::Ignores { ep, target } => {
            match b.watches((&ep.0, ep.1), (&target.0, target.1), None)? {
                WatchRelation::DoesNot => (true, "no registration of that file".into()),
                WatchRelation::Watches => (false, "the file is registered".into()),
                WatchRelation::NotEpoll => {
                    (false, format!("{} is not an epoll instance", name(ep)))
                }
                WatchRelation::NotOpen(i) => {
                    (false, format!("{} is not open", name([ep, target][i])))
                }
            }
        }
        Expectation::Watches { ep, target, as_fd } => {
            match b.watches((&ep.0, ep.1), (&target.0, target.1), Some(*as_fd))? {
                WatchRelation::Watches => (true, "registered".into()),
                WatchRelation::DoesNot => {
                    (false, format!("no registration of that file under {as_fd}"))
                }
                WatchRelation::NotEpoll => {
                    (false, format!("{} is not an epoll instance", name(ep)))
                }
                WatchRelation::NotOpen(i) => {
                    (false, format!("{} is not open", name([ep, target][i])))
                }
            }
        }
    })
}
