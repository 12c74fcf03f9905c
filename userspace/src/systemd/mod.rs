//! systemd's own memory of its services, over D-Bus: how often it
//! restarted each (`NRestarts`), how the last run ended, its restart
//! policy. The host's manager and every container's that runs systemd,
//! each through its private socket (peer to peer, no bus daemon), the
//! host's falling back to the system bus.
//!
//! Async, for the one current-thread tokio runtime trace and sentinel run
//! on: a connection is one socket, written and read by the task that
//! reads; nothing is spawned but the short blocking fork that connects to
//! a container. Connecting, and waiting for each reply, has a timeout
//! ([`TIMEOUT`]) so a hung manager cannot stall start-up; an [`Error`]
//! prints as one line naming the socket.

mod classify;
mod discover;
mod nsconnect;
mod types;
mod wire;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Serialize;
use wire::{Call, Wire, WireError};
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

pub use classify::{
    MIN_RESTARTS, MIN_WINDOW_US, RestartSpan, SystemdLoop, looping_now, message, recent_window_us,
};
pub use discover::{ContainerInit, container_name, is_namespace_init, scan};
pub use types::{ActiveState, ExecMainCode, RestartPolicy, ServiceResult, SubState};

/// The host manager's private socket (root only).
pub const HOST_PRIVATE_SOCKET: &str = "/run/systemd/private";
/// The system bus, where the host's manager is also reachable.
pub const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";
/// For connecting, and for each call.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// Calls awaiting their replies at once on one connection. Refilled in
/// batches once half have been answered: one write for many calls.
pub const IN_FLIGHT: usize = 128;

const DESTINATION: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER_IFACE: &str = "org.freedesktop.systemd1.Manager";
const UNIT_IFACE: &str = "org.freedesktop.systemd1.Unit";
const SERVICE_IFACE: &str = "org.freedesktop.systemd1.Service";
const PROPERTIES_IFACE: &str = "org.freedesktop.DBus.Properties";

/// Why a manager could not be read. Each prints as one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No socket there, or nothing listening on it.
    #[error("no systemd manager at {}", path.display())]
    NoManager { path: PathBuf },
    #[error("permission denied by systemd at {}", path.display())]
    PermissionDenied { path: PathBuf },
    #[error("systemd at {} did not answer within {after:?}", path.display())]
    Timeout { path: PathBuf, after: Duration },
    /// Anything else: a refused authentication, a D-Bus error reply, a
    /// reply of the wrong shape, a broken connection.
    #[error("systemd at {}: {detail}", path.display())]
    Protocol { path: PathBuf, detail: String },
}

impl Error {
    /// The socket it concerns.
    pub fn path(&self) -> &Path {
        match self {
            Error::NoManager { path }
            | Error::PermissionDenied { path }
            | Error::Timeout { path, .. }
            | Error::Protocol { path, .. } => path,
        }
    }

    fn io(path: &Path, e: &std::io::Error) -> Self {
        let path = path.to_path_buf();
        match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                Error::NoManager { path }
            }
            std::io::ErrorKind::PermissionDenied => Error::PermissionDenied { path },
            std::io::ErrorKind::TimedOut => Error::Timeout {
                path,
                after: TIMEOUT,
            },
            _ => Error::Protocol {
                path,
                detail: one_line(&e.to_string()),
            },
        }
    }

    fn wire(path: &Path, e: WireError) -> Self {
        match e {
            WireError::Io(io) => Error::io(path, &io),
            WireError::Method { name, .. } if name == "org.freedesktop.DBus.Error.AccessDenied" => {
                Error::PermissionDenied {
                    path: path.to_path_buf(),
                }
            }
            WireError::Method { name, message } => Error::Protocol {
                path: path.to_path_buf(),
                detail: one_line(&format!("{name}: {message}")),
            },
            WireError::Protocol(detail) => Error::Protocol {
                path: path.to_path_buf(),
                detail: one_line(&detail),
            },
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One service as its manager sees it. Timestamps are µs since the epoch,
/// 0 for never; a property an older systemd lacks reads as 0 or empty.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceState {
    /// The container's name, None for the host's manager.
    pub container: Option<String>,
    /// `Id`: the unit's name.
    pub unit: String,
    pub active_state: ActiveState,
    pub sub_state: SubState,
    /// `Result`.
    pub result: ServiceResult,
    /// `Restart`.
    pub restart: RestartPolicy,
    /// `NRestarts`: automatic restarts since the last manual start or
    /// `reset-failed`.
    pub n_restarts: u32,
    pub exec_main_code: ExecMainCode,
    /// Exit status, or the signal, per [`ServiceState::exec_main_code`].
    pub exec_main_status: i32,
    /// `ExecMainStartTimestamp`.
    pub exec_main_start_us: u64,
    /// `ExecMainExitTimestamp`.
    pub exec_main_exit_us: u64,
    /// `InactiveExitTimestamp`.
    pub inactive_exit_us: u64,
    /// `StateChangeTimestamp`.
    pub state_change_us: u64,
    /// `RestartUSec`.
    pub restart_us: u64,
    /// `StartLimitIntervalUSec` (u64::MAX for infinity).
    pub start_limit_interval_us: u64,
    pub start_limit_burst: u32,
    /// `ControlGroup` inside the manager's own cgroup tree; None when the
    /// unit has none (not running).
    pub control_group: Option<String>,
}

/// The Unit interface's properties read by `Get`. The name and the active
/// and sub-state come with the listing of units.
pub const UNIT_PROPERTIES: [&str; 4] = [
    "InactiveExitTimestamp",
    "StateChangeTimestamp",
    "StartLimitIntervalUSec",
    "StartLimitBurst",
];
/// The Service interface's.
pub const SERVICE_PROPERTIES: [&str; 9] = [
    "NRestarts",
    "Result",
    "Restart",
    "RestartUSec",
    "ExecMainCode",
    "ExecMainStatus",
    "ExecMainStartTimestamp",
    "ExecMainExitTimestamp",
    "ControlGroup",
];
/// What [`ReadMode::Restarted`] reads of every service first.
const FIRST_PROPERTIES: [&str; 2] = ["NRestarts", "ControlGroup"];

impl ServiceState {
    /// From the properties of the unit's Unit and Service interfaces
    /// together, by name. A property that is missing or of another type
    /// reads as 0 or empty; the unit's name falls back to `unit`.
    pub fn from_properties(
        container: Option<String>,
        unit: &str,
        props: &HashMap<&'static str, OwnedValue>,
    ) -> Self {
        let get = |k: &str| props.get(k).map(|v| &**v);
        let s = |k: &str| match get(k) {
            Some(Value::Str(s)) => s.as_str().to_string(),
            _ => String::new(),
        };
        let u64_ = |k: &str| match get(k) {
            Some(Value::U64(n)) => *n,
            _ => 0,
        };
        let u32_ = |k: &str| match get(k) {
            Some(Value::U32(n)) => *n,
            _ => 0,
        };
        let i32_ = |k: &str| match get(k) {
            Some(Value::I32(n)) => *n,
            _ => 0,
        };
        let id = s("Id");
        let cg = s("ControlGroup");
        ServiceState {
            container,
            unit: if id.is_empty() { unit.to_string() } else { id },
            active_state: ActiveState::parse(&s("ActiveState")),
            sub_state: SubState::parse(&s("SubState")),
            result: ServiceResult::parse(&s("Result")),
            restart: RestartPolicy::parse(&s("Restart")),
            n_restarts: u32_("NRestarts"),
            exec_main_code: ExecMainCode::from_code(i32_("ExecMainCode")),
            exec_main_status: i32_("ExecMainStatus"),
            exec_main_start_us: u64_("ExecMainStartTimestamp"),
            exec_main_exit_us: u64_("ExecMainExitTimestamp"),
            inactive_exit_us: u64_("InactiveExitTimestamp"),
            state_change_us: u64_("StateChangeTimestamp"),
            restart_us: u64_("RestartUSec"),
            start_limit_interval_us: u64_("StartLimitIntervalUSec"),
            start_limit_burst: u32_("StartLimitBurst"),
            control_group: (!cg.is_empty()).then_some(cg),
        }
    }
}

/// How a unit's properties are fetched. Every mode lists the services
/// (name, active and sub-state) first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadMode {
    /// What a loop needs, and no more: `NRestarts` and `ControlGroup` of
    /// every service by `Get`; then every other property, by `Get`, of the
    /// services systemd has restarted at least [`MIN_RESTARTS`] times, the
    /// only ones that can be looping ([`looping_now`]). Elsewhere those
    /// properties read as 0 or empty. What trace and the sentinel use.
    #[default]
    Restarted,
    /// Every property of every service, one `Get` each.
    Get,
    /// Every property of every service, by two `GetAll` calls (one per
    /// interface); the same [`ServiceState`] as [`ReadMode::Get`], slower:
    /// systemd computes (and reads cgroup files for) some 300 properties
    /// per service where 13 are wanted.
    GetAll,
}

/// How a socket is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A manager's private socket: peer to peer, no `Hello`.
    Private,
    /// A bus daemon, which routes to the manager's well-known name.
    Bus,
}

/// A connection to one systemd manager.
pub struct Manager {
    wire: tokio::sync::Mutex<Wire>,
    socket: PathBuf,
    container: Option<String>,
    /// Through a bus daemon: calls name their destination.
    bus: bool,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("socket", &self.socket)
            .field("container", &self.container)
            .field("bus", &self.bus)
            .finish()
    }
}

impl Manager {
    /// Connects to the manager at `socket` within [`TIMEOUT`]; its
    /// services will be tagged with `container`.
    pub async fn connect(
        socket: &Path,
        transport: Transport,
        container: Option<String>,
    ) -> Result<Self, Error> {
        let attempt = async {
            let stream = tokio::net::UnixStream::connect(socket)
                .await
                .map_err(|e| Error::io(socket, &e))?;
            Wire::open(stream, transport == Transport::Bus, TIMEOUT)
                .await
                .map_err(|e| Error::wire(socket, e))
        };
        Self::within_timeout(socket, container, transport, attempt).await
    }

    async fn within_timeout(
        socket: &Path,
        container: Option<String>,
        transport: Transport,
        attempt: impl std::future::Future<Output = Result<Wire, Error>>,
    ) -> Result<Self, Error> {
        let wire = tokio::time::timeout(TIMEOUT, attempt)
            .await
            .map_err(|_| Error::Timeout {
                path: socket.to_path_buf(),
                after: TIMEOUT,
            })??;
        Ok(Self {
            wire: tokio::sync::Mutex::new(wire),
            socket: socket.to_path_buf(),
            container,
            bus: transport == Transport::Bus,
        })
    }

    /// The host's manager: its private socket, else the system bus. When
    /// both fail, the private socket's error unless the bus's says more
    /// (the bus exists but refused or hung).
    pub async fn host() -> Result<Self, Error> {
        Self::host_at(Path::new(HOST_PRIVATE_SOCKET), Path::new(SYSTEM_BUS_SOCKET)).await
    }

    /// [`Manager::host`] with other socket paths.
    pub async fn host_at(private: &Path, bus: &Path) -> Result<Self, Error> {
        match Self::connect(private, Transport::Private, None).await {
            Ok(m) => Ok(m),
            Err(first @ (Error::NoManager { .. } | Error::PermissionDenied { .. })) => {
                match Self::connect(bus, Transport::Bus, None).await {
                    Ok(m) => Ok(m),
                    Err(Error::NoManager { .. }) => Err(first),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// A container's manager, through its root as seen under `proc_root`
    /// (normally /proc), connected from inside its PID namespace: systemd
    /// closes private connections from peers it cannot see.
    pub async fn container(c: &ContainerInit, proc_root: &Path) -> Result<Self, Error> {
        let socket = c.private_socket(proc_root);
        let attempt = async {
            let (root, pid, path) = (proc_root.to_path_buf(), c.pid, socket.clone());
            let stream =
                tokio::task::spawn_blocking(move || nsconnect::connect(&root, pid, &path, TIMEOUT))
                    .await
                    .map_err(|e| Error::Protocol {
                        path: socket.clone(),
                        detail: one_line(&e.to_string()),
                    })?
                    .and_then(tokio::net::UnixStream::from_std)
                    .map_err(|e| Error::io(&socket, &e))?;
            Wire::open(stream, false, TIMEOUT)
                .await
                .map_err(|e| Error::wire(&socket, e))
        };
        Self::within_timeout(&socket, Some(c.label()), Transport::Private, attempt).await
    }

    /// The socket it is connected to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The container it was tagged with.
    pub fn container_name(&self) -> Option<&str> {
        self.container.as_deref()
    }

    fn call<B>(&self, path: &str, iface: &str, method: &str, body: &B) -> Result<Call, Error>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        wire::call(self.bus.then_some(DESTINATION), path, iface, method, body)
            .map_err(|e| Error::wire(&self.socket, e))
    }

    /// Every loaded service's name, object path, and active and sub-state
    /// (units systemd only knows as not found are left out: there is
    /// nothing to read).
    pub async fn service_units(&self) -> Result<Vec<Listed>, Error> {
        let states: &[&str] = &[];
        let c = self.call(
            MANAGER_PATH,
            MANAGER_IFACE,
            "ListUnitsByPatterns",
            &(states, &["*.service"][..]),
        )?;
        let mut wire = self.wire.lock().await;
        wire.write(&c.bytes)
            .await
            .map_err(|e| Error::wire(&self.socket, e))?;
        let reply = loop {
            let r = wire
                .recv()
                .await
                .map_err(|e| Error::wire(&self.socket, e))?;
            if r.reply_serial == c.serial {
                break r;
            }
        };
        type Row = (
            String,
            String,
            String,
            String,
            String,
            String,
            OwnedObjectPath,
            u32,
            String,
            OwnedObjectPath,
        );
        let rows: Vec<Row> = reply.body().map_err(|e| Error::wire(&self.socket, e))?;
        Ok(rows
            .into_iter()
            .filter(|r| r.2 != "not-found")
            .map(|r| Listed {
                name: r.0,
                path: r.6.as_str().to_string(),
                active_state: r.3,
                sub_state: r.4,
            })
            .collect())
    }

    /// Every loaded service's state, read with [`ReadMode::Restarted`].
    pub async fn services(&self) -> Result<Vec<ServiceState>, Error> {
        self.services_with(ReadMode::default()).await
    }

    /// Every loaded service's state, pipelined over the one connection
    /// with at most [`IN_FLIGHT`] calls awaiting their replies. A unit
    /// that is gone by the time it is read (an error reply for it) is
    /// left out; a broken or hung connection fails the whole reading.
    pub async fn services_with(&self, mode: ReadMode) -> Result<Vec<ServiceState>, Error> {
        let units = self.service_units().await?;
        let mut props: Vec<HashMap<&'static str, OwnedValue>> = units
            .iter()
            .map(|u| {
                let str_ = |v: &str| OwnedValue::try_from(Value::from(v.to_string())).ok();
                [("ActiveState", &u.active_state), ("SubState", &u.sub_state)]
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, str_(v)?)))
                    .collect()
            })
            .collect();
        let mut gone = vec![false; units.len()];
        let every = || {
            UNIT_PROPERTIES
                .iter()
                .map(|p| (UNIT_IFACE, *p))
                .chain(SERVICE_PROPERTIES.iter().map(|p| (SERVICE_IFACE, *p)))
        };
        let mut calls: Vec<(usize, Option<&'static str>, Call)> = Vec::new();
        for (i, u) in units.iter().enumerate() {
            match mode {
                ReadMode::GetAll => {
                    for iface in [UNIT_IFACE, SERVICE_IFACE] {
                        calls.push((
                            i,
                            None,
                            self.call(&u.path, PROPERTIES_IFACE, "GetAll", &iface)?,
                        ));
                    }
                }
                ReadMode::Get => {
                    for (iface, prop) in every() {
                        calls.push((i, Some(prop), self.get(&u.path, iface, prop)?));
                    }
                }
                ReadMode::Restarted => {
                    for prop in FIRST_PROPERTIES {
                        calls.push((i, Some(prop), self.get(&u.path, SERVICE_IFACE, prop)?));
                    }
                }
            }
        }
        self.fetch(calls, &mut props, &mut gone).await?;
        if mode == ReadMode::Restarted {
            let mut calls = Vec::new();
            for (i, u) in units.iter().enumerate() {
                let restarts = match props[i].get("NRestarts").map(|v| &**v) {
                    Some(Value::U32(n)) => *n,
                    _ => 0,
                };
                if gone[i] || restarts < MIN_RESTARTS {
                    continue;
                }
                for (iface, prop) in every().filter(|(_, p)| !FIRST_PROPERTIES.contains(p)) {
                    calls.push((i, Some(prop), self.get(&u.path, iface, prop)?));
                }
            }
            self.fetch(calls, &mut props, &mut gone).await?;
        }
        let mut out: Vec<ServiceState> = units
            .iter()
            .zip(props)
            .zip(gone)
            .filter(|(_, gone)| !gone)
            .map(|((u, p), _)| ServiceState::from_properties(self.container.clone(), &u.name, &p))
            .collect();
        out.sort_by(|a, b| a.unit.cmp(&b.unit));
        Ok(out)
    }

    fn get(&self, path: &str, iface: &str, prop: &str) -> Result<Call, Error> {
        self.call(path, PROPERTIES_IFACE, "Get", &(iface, prop))
    }

    /// Sends `calls` (unit index, property for a `Get`, the call),
    /// pipelined, and files each reply's properties under its unit; a unit
    /// whose object is gone is marked so.
    async fn fetch(
        &self,
        calls: Vec<(usize, Option<&'static str>, Call)>,
        props: &mut [HashMap<&'static str, OwnedValue>],
        gone: &mut [bool],
    ) -> Result<(), Error> {
        let mut waiting: HashMap<u32, (usize, Option<&'static str>)> = HashMap::new();
        let mut next = calls.into_iter();
        let mut wire = self.wire.lock().await;
        let fail = |e| Error::wire(&self.socket, e);
        loop {
            // Top up to IN_FLIGHT, in one write, once half are answered.
            let mut batch = Vec::new();
            while waiting.len() < IN_FLIGHT && (waiting.len() <= IN_FLIGHT / 2 || !batch.is_empty())
            {
                let Some((i, prop, c)) = next.next() else {
                    break;
                };
                waiting.insert(c.serial, (i, prop));
                batch.extend_from_slice(&c.bytes);
            }
            if !batch.is_empty() {
                wire.write(&batch).await.map_err(fail)?;
            }
            if waiting.is_empty() {
                return Ok(());
            }
            let r = wire.recv().await.map_err(fail)?;
            let Some((i, prop)) = waiting.remove(&r.reply_serial) else {
                continue;
            };
            match prop {
                None => match r.body::<HashMap<String, OwnedValue>>() {
                    Ok(p) => {
                        for (k, v) in p {
                            if let Some(known) = known_property(&k) {
                                props[i].insert(known, v);
                            }
                        }
                    }
                    Err(WireError::Method { .. }) => gone[i] = true,
                    Err(e) => return Err(fail(e)),
                },
                Some(prop) => match r.body::<OwnedValue>() {
                    Ok(v) => {
                        props[i].insert(prop, v);
                    }
                    // A property this systemd does not have.
                    Err(WireError::Method { name, .. })
                        if name == "org.freedesktop.DBus.Error.UnknownProperty"
                            || name == "org.freedesktop.DBus.Error.InvalidArgs" => {}
                    Err(WireError::Method { .. }) => gone[i] = true,
                    Err(e) => return Err(fail(e)),
                },
            }
        }
    }
}

/// One service as the listing gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub path: String,
    pub active_state: String,
    pub sub_state: String,
}

/// The name of a property [`ServiceState`] is made from, if `name` is one.
fn known_property(name: &str) -> Option<&'static str> {
    UNIT_PROPERTIES
        .iter()
        .chain(SERVICE_PROPERTIES.iter())
        .chain(["Id", "ActiveState", "SubState"].iter())
        .find(|p| **p == name)
        .copied()
}

/// Polls every future to completion on the current task, in order of
/// completion, results in the order given.
async fn join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (f, slot) in futs.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// What one manager said: its services, or why it could not be read.
#[derive(Debug)]
pub struct Reading {
    /// None for the host's manager.
    pub container: Option<String>,
    /// The manager's root directory as seen from here: `/` for the host,
    /// `/proc/PID/root` for a container (where its journal is found).
    pub root: PathBuf,
    pub result: Result<Vec<ServiceState>, Error>,
}

/// The host's manager and every container's found under `proc_root`
/// (normally /proc), read at once; one [`Reading`] each, the host's first.
pub async fn read_all(proc_root: &Path) -> Vec<Reading> {
    let containers = scan(proc_root);
    let host = async {
        Reading {
            container: None,
            root: PathBuf::from("/"),
            result: match Manager::host().await {
                Ok(m) => m.services().await,
                Err(e) => Err(e),
            },
        }
    };
    let guests = containers.iter().map(|c| async move {
        Reading {
            container: Some(c.label()),
            root: proc_root.join(c.pid.to_string()).join("root"),
            result: match Manager::container(c, proc_root).await {
                Ok(m) => m.services().await,
                Err(e) => Err(e),
            },
        }
    });
    let (host, guests) = tokio::join!(host, join_all(guests.collect()));
    std::iter::once(host).chain(guests).collect()
}

/// The loops among `states` at `now_us` (µs since the epoch).
pub fn loops(states: &[ServiceState], now_us: u64) -> Vec<SystemdLoop> {
    states
        .iter()
        .filter_map(|s| looping_now(s, now_us))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&'static str, Value<'static>)]) -> HashMap<&'static str, OwnedValue> {
        pairs
            .iter()
            .map(|(k, v)| (*k, OwnedValue::try_from(v.clone()).unwrap()))
            .collect()
    }

    #[test]
    fn properties_map_to_typed_fields() {
        let p = props(&[
            ("Id", Value::from("crashy.service")),
            ("ActiveState", Value::from("activating")),
            ("SubState", Value::from("auto-restart")),
            ("Result", Value::from("exit-code")),
            ("Restart", Value::from("always")),
            ("NRestarts", Value::U32(17)),
            ("ExecMainCode", Value::I32(1)),
            ("ExecMainStatus", Value::I32(1)),
            ("ExecMainStartTimestamp", Value::U64(1_000)),
            ("ExecMainExitTimestamp", Value::U64(51_000)),
            ("RestartUSec", Value::U64(1_000_000)),
            ("StartLimitBurst", Value::U32(5)),
            ("ControlGroup", Value::from("")),
        ]);
        let s = ServiceState::from_properties(Some("ct".into()), "x.service", &p);
        assert_eq!(s.unit, "crashy.service");
        assert_eq!(s.container.as_deref(), Some("ct"));
        assert_eq!(s.active_state, ActiveState::Activating);
        assert_eq!(s.sub_state, SubState::AutoRestart);
        assert_eq!(s.result, ServiceResult::ExitCode);
        assert_eq!(s.restart, RestartPolicy::Always);
        assert_eq!(s.n_restarts, 17);
        assert_eq!(s.exec_main_code, ExecMainCode::Exited);
        assert_eq!(s.exec_main_exit_us - s.exec_main_start_us, 50_000);
        assert_eq!(s.restart_us, 1_000_000);
        assert_eq!(s.start_limit_burst, 5);
        assert_eq!(s.control_group, None, "empty ControlGroup: none");
    }

    #[test]
    fn missing_or_mistyped_properties_read_as_empty() {
        let p = props(&[
            ("NRestarts", Value::from("many")),
            ("ExecMainStartTimestamp", Value::I32(-1)),
        ]);
        let s = ServiceState::from_properties(None, "old.service", &p);
        assert_eq!(s.unit, "old.service", "no Id: the listed name");
        assert_eq!(s.n_restarts, 0);
        assert_eq!(s.exec_main_start_us, 0);
        assert_eq!(s.active_state, ActiveState::Other(String::new()));
    }

    #[test]
    fn errors_are_one_line_naming_the_socket() {
        let e = Error::Protocol {
            path: "/run/systemd/private".into(),
            detail: one_line("bad\nreply\n  shape"),
        };
        assert_eq!(
            e.to_string(),
            "systemd at /run/systemd/private: bad reply shape"
        );
        let e = Error::io(
            Path::new("/x/private"),
            &std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(e.to_string(), "no systemd manager at /x/private");
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn an_absent_socket_is_no_manager() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("private");
        let e = rt()
            .block_on(Manager::connect(&path, Transport::Private, None))
            .unwrap_err();
        assert!(
            matches!(&e, Error::NoManager { path: p } if *p == path),
            "{e}"
        );
    }

    #[test]
    fn a_listener_that_never_answers_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("private");
        // Accepts (the kernel completes the connection) but never speaks.
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let t0 = std::time::Instant::now();
        let e = rt()
            .block_on(Manager::connect(&path, Transport::Private, None))
            .unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
        assert!(t0.elapsed() < TIMEOUT + Duration::from_secs(1));
    }

    #[test]
    fn host_falls_back_to_the_bus_and_reports_the_private_socket() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("private");
        let bus = dir.path().join("bus");
        let e = rt().block_on(Manager::host_at(&private, &bus)).unwrap_err();
        assert!(
            matches!(&e, Error::NoManager { path } if *path == private),
            "{e}"
        );
    }
}
