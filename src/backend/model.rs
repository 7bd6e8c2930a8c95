//! The model as a backend: every process is a `fdlab_model::Pid`.

use fdlab_model::file::FileKind;
use fdlab_model::trace::TraceEvent;
use fdlab_model::{Call, Fd, FileId, OFlags, Outcome, Pid, Topology, World};

use super::api::{Backend, BackendError, FileRelation, WatchRelation};

/// Runs scenarios on [`fdlab_model::World`].
#[derive(Debug, Clone)]
pub struct ModelBackend {
    world: World,
}

impl Default for ModelBackend {
    fn default() -> Self {
        ModelBackend::new()
    }
}

impl ModelBackend {
    /// A model whose processes have the privileges of this one, so that it
    /// answers as Linux does for the same user (root bypasses permission
    /// bits).
    pub fn new() -> ModelBackend {
        let mut world = World::new();
        // SAFETY: geteuid has no arguments and cannot fail.
        world.set_privileged(unsafe { libc::geteuid() } == 0);
        ModelBackend { world }
    }

    /// A model that leaves the work Linux does from work queues pending
    /// (see `fdlab_model::deferred`), and so may be in several states after
    /// a step: `later_states` gives the others. The comparison with Linux
    /// uses it.
    pub fn deferred() -> ModelBackend {
        let mut m = ModelBackend::new();
        m.world.set_deferred(true);
        m
    }

    /// The world, for tests that do deferred work by hand.
    pub fn world_mut(&mut self) -> &mut World {
        &mut self.world
    }

    /// The world, for tests that check invariants between steps.
    pub fn world(&self) -> &World {
        &self.world
    }

    fn pid(&self, name: &str) -> Result<Pid, BackendError> {
        self.world
            .pid(name)
            .ok_or_else(|| BackendError::UnknownProcess(name.to_string()))
    }

    /// The installed file at `proc:fd`.
    fn file_at(&self, proc: &str, fd: i32) -> Result<Option<FileId>, BackendError> {
        let pid = self.pid(proc)?;
        Ok(Fd::from_raw(fd).and_then(|fd| self.world.table_of(pid).installed(fd)))
    }

    /// How the files at `a` and `b` relate, `same` deciding for two open
    /// ones.
    fn relate(
        &self,
        a: (&str, i32),
        b: (&str, i32),
        same: impl Fn(&World, FileId, FileId) -> bool,
    ) -> Result<FileRelation, BackendError> {
        Ok(match (self.file_at(a.0, a.1)?, self.file_at(b.0, b.1)?) {
            (None, _) => FileRelation::NotOpen(0),
            (_, None) => FileRelation::NotOpen(1),
            (Some(x), Some(y)) if same(&self.world, x, y) => FileRelation::Same,
            _ => FileRelation::Differs,
        })
    }
}

impl Backend for ModelBackend {
    fn name(&self) -> &'static str {
        "model"
    }

    fn spawn(&mut self, name: &str, stdio: bool) -> Result<(), BackendError> {
        let pid = self
            .world
            .spawn(name)
            .map_err(|_| BackendError::NameInUse(name.to_string()))?;
        if stdio {
            for flags in [OFlags::RDONLY, OFlags::WRONLY, OFlags::WRONLY] {
                // A fresh table always has room for three descriptors and
                // /dev/null always exists.
                self.world
                    .sys_open(pid, "/dev/null", flags, 0)
                    .expect("opening /dev/null in a fresh table");
            }
        }
        Ok(())
    }

    fn call(&mut self, proc: &str, call: &Call) -> Result<Outcome, BackendError> {
        let pid = self.pid(proc)?;
        if let Some(child) = call.child() {
            if self.world.pid(child).is_some() {
                return Err(BackendError::NameInUse(child.to_string()));
            }
        }
        Ok(self.world.call(pid, call))
    }

    fn file_relation(
        &mut self,
        a: (&str, i32),
        b: (&str, i32),
    ) -> Result<FileRelation, BackendError> {
        self.relate(a, b, |_, x, y| x == y)
    }

    fn object_relation(
        &mut self,
        a: (&str, i32),
        b: (&str, i32),
    ) -> Result<FileRelation, BackendError> {
        self.relate(a, b, |w, x, y| w.object_of(x) == w.object_of(y))
    }

    fn same_table(&mut self, a: &str, b: &str) -> Result<bool, BackendError> {
        let (pa, pb) = (self.pid(a)?, self.pid(b)?);
        Ok(self.world.proc(pa).table_id() == self.world.proc(pb).table_id())
    }

    fn open_fds(&mut self, proc: &str) -> Result<Vec<i32>, BackendError> {
        let pid = self.pid(proc)?;
        Ok(self
            .world
            .table_of(pid)
            .installed_all()
            .into_iter()
            .map(|(fd, _, _)| fd.get() as i32)
            .collect())
    }

    fn watches(
        &mut self,
        ep: (&str, i32),
        target: (&str, i32),
        as_fd: Option<i32>,
    ) -> Result<WatchRelation, BackendError> {
        let Some(e) = self.file_at(ep.0, ep.1)? else {
            return Ok(WatchRelation::NotOpen(0));
        };
        let Some(t) = self.file_at(target.0, target.1)? else {
            return Ok(WatchRelation::NotOpen(1));
        };
        let FileKind::Epoll(epoll) = &self.world.file(e).kind else {
            return Ok(WatchRelation::NotEpoll);
        };
        let registered = match as_fd {
            Some(n) => epoll.interest.contains_key(&(Fd::new(n as u32), t)),
            None => epoll.interest.keys().any(|&(_, f)| f == t),
        };
        Ok(if registered {
            WatchRelation::Watches
        } else {
            WatchRelation::DoesNot
        })
    }

    fn topology(&mut self) -> Result<Topology, BackendError> {
        Ok(self.world.topology())
    }

    fn later_states(&self) -> Option<Vec<Box<dyn Backend>>> {
        let worlds = self.world.later_states()?;
        Some(
            worlds
                .into_iter()
                .map(|world| Box::new(ModelBackend { world }) as Box<dyn Backend>)
                .collect(),
        )
    }

    fn state_key(&self) -> Option<String> {
        Some(self.world.fingerprint())
    }

    fn set_tracing(&mut self, on: bool) {
        self.world.set_tracing(on);
    }

    fn take_trace(&mut self) -> Vec<TraceEvent> {
        self.world.take_trace()
    }

    fn world(&self) -> Option<&fdlab_model::World> {
        Some(&self.world)
    }
}
