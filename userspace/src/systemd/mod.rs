//! systemd's own memory of its services, over D-Bus: how often it
//! restarted each (`NRestarts`), how the last run ended, its restart
//! policy. The host's manager and every container's that runs systemd,
//! each through its private socket (peer to peer, no bus daemon), the
//! host's falling back to the system bus.
//!
//! Async, for the one current-thread tokio runtime trace and sentinel run
//! on: zbus's tokio backend spawns its reader task on the caller's
//! runtime and starts no thread of its own. Every connection and call has
//! a timeout ([`TIMEOUT`]) so a hung manager cannot stall start-up; an
//! [`Error`] prints as one line naming the socket.

mod classify;
mod discover;
mod types;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Serialize;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

pub use classify::{
    MIN_RESTARTS, MIN_WINDOW_US, SystemdLoop, looping_now, message, recent_window_us,
};
pub use discover::{ContainerInit, container_name, is_namespace_init, scan};
pub use types::{ActiveState, ExecMainCode, RestartPolicy, ServiceResult, SubState};

/// The host manager's private socket (root only).
pub const HOST_PRIVATE_SOCKET: &str = "/run/systemd/private";
/// The system bus, where the host's manager is also reachable.
pub const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";
/// For connecting, and for each call.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// Units read at once over one connection.
pub const IN_FLIGHT: usize = 64;

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

    fn dbus(path: &Path, e: &zbus::Error) -> Self {
        match e {
            zbus::Error::InputOutput(io) => Error::io(path, io),
            zbus::Error::MethodError(name, _, _)
                if name.as_str() == "org.freedesktop.DBus.Error.AccessDenied" =>
            {
                Error::PermissionDenied {
                    path: path.to_path_buf(),
                }
            }
            e => Error::Protocol {
                path: path.to_path_buf(),
                detail: one_line(&e.to_string()),
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

/// The properties read, by interface.
pub const UNIT_PROPERTIES: [&str; 7] = [
    "Id",
    "ActiveState",
    "SubState",
    "InactiveExitTimestamp",
    "StateChangeTimestamp",
    "StartLimitIntervalUSec",
    "StartLimitBurst",
];
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

impl ServiceState {
    /// From the properties of the unit's Unit and Service interfaces
    /// together, by name. A property that is missing or of another type
    /// reads as 0 or empty; the unit's name falls back to `unit`.
    pub fn from_properties(
        container: Option<String>,
        unit: &str,
        props: &HashMap<String, OwnedValue>,
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

/// How a unit's properties are fetched: two `GetAll` calls (one per
/// interface), or one `Get` per property. Both give the same
/// [`ServiceState`]; `cargo xtask bench systemd` times each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadMode {
    #[default]
    GetAll,
    Get,
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
#[derive(Debug, Clone)]
pub struct Manager {
    conn: zbus::Connection,
    socket: PathBuf,
    container: Option<String>,
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
            let mut b = zbus::connection::Builder::unix_stream(stream).method_timeout(TIMEOUT);
            if transport == Transport::Private {
                b = b.p2p();
            }
            b.build().await.map_err(|e| Error::dbus(socket, &e))
        };
        let conn = tokio::time::timeout(TIMEOUT, attempt)
            .await
            .map_err(|_| Error::Timeout {
                path: socket.to_path_buf(),
                after: TIMEOUT,
            })??;
        Ok(Self {
            conn,
            socket: socket.to_path_buf(),
            container,
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

    /// A container's manager, through its root as seen under `proc_root`.
    pub async fn container(c: &ContainerInit, proc_root: &Path) -> Result<Self, Error> {
        Self::connect(
            &c.private_socket(proc_root),
            Transport::Private,
            Some(c.label()),
        )
        .await
    }

    /// The socket it is connected to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The container it was tagged with.
    pub fn container_name(&self) -> Option<&str> {
        self.container.as_deref()
    }

    async fn call<B>(
        &self,
        path: &OwnedObjectPath,
        iface: &str,
        method: &str,
        body: &B,
    ) -> Result<zbus::Message, zbus::Error>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        self.conn
            .call_method(Some(DESTINATION), path, Some(iface), method, body)
            .await
    }

    /// Every loaded service's object path and name (units systemd only
    /// knows as not found are left out: there is nothing to read).
    pub async fn service_units(&self) -> Result<Vec<(String, OwnedObjectPath)>, Error> {
        let manager = OwnedObjectPath::try_from(MANAGER_PATH).map_err(|e| Error::Protocol {
            path: self.socket.clone(),
            detail: e.to_string(),
        })?;
        let states: &[&str] = &[];
        let reply = self
            .call(
                &manager,
                MANAGER_IFACE,
                "ListUnitsByPatterns",
                &(states, &["*.service"][..]),
            )
            .await
            .map_err(|e| Error::dbus(&self.socket, &e))?;
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
        let rows: Vec<Row> = reply
            .body()
            .deserialize()
            .map_err(|e| Error::dbus(&self.socket, &e))?;
        Ok(rows
            .into_iter()
            .filter(|r| r.2 != "not-found")
            .map(|r| (r.0, r.6))
            .collect())
    }

    /// One unit's properties, both interfaces in one map.
    async fn properties(
        &self,
        path: &OwnedObjectPath,
        mode: ReadMode,
    ) -> Result<HashMap<String, OwnedValue>, zbus::Error> {
        match mode {
            ReadMode::GetAll => {
                let (unit, service) = tokio::join!(
                    self.call(path, PROPERTIES_IFACE, "GetAll", &UNIT_IFACE),
                    self.call(path, PROPERTIES_IFACE, "GetAll", &SERVICE_IFACE),
                );
                let mut props: HashMap<String, OwnedValue> = unit?.body().deserialize()?;
                let service: HashMap<String, OwnedValue> = service?.body().deserialize()?;
                props.extend(service);
                Ok(props)
            }
            ReadMode::Get => {
                let mut props = HashMap::new();
                let wanted = UNIT_PROPERTIES
                    .iter()
                    .map(|p| (UNIT_IFACE, *p))
                    .chain(SERVICE_PROPERTIES.iter().map(|p| (SERVICE_IFACE, *p)));
                let calls = wanted.map(|(iface, prop)| async move {
                    let reply = self
                        .call(path, PROPERTIES_IFACE, "Get", &(iface, prop))
                        .await?;
                    let v: OwnedValue = reply.body().deserialize()?;
                    Ok::<_, zbus::Error>((prop, v))
                });
                for r in join_all(calls.collect()).await {
                    match r {
                        Ok((prop, v)) => {
                            props.insert(prop.to_string(), v);
                        }
                        // A property this systemd does not have.
                        Err(zbus::Error::MethodError(name, _, _))
                            if name.as_str() == "org.freedesktop.DBus.Error.UnknownProperty"
                                || name.as_str() == "org.freedesktop.DBus.Error.InvalidArgs" => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(props)
            }
        }
    }

    /// Every loaded service's state, read with [`ReadMode::GetAll`].
    pub async fn services(&self) -> Result<Vec<ServiceState>, Error> {
        self.services_with(ReadMode::default()).await
    }

    /// Every loaded service's state, [`IN_FLIGHT`] units at a time over
    /// the one connection. A unit that is gone by the time it is read
    /// (a D-Bus error for that unit alone) is left out; a broken or hung
    /// connection fails the whole reading.
    pub async fn services_with(&self, mode: ReadMode) -> Result<Vec<ServiceState>, Error> {
        let units = self.service_units().await?;
        let mut out = Vec::with_capacity(units.len());
        let mut running = tokio::task::JoinSet::new();
        let mut pending = units.into_iter();
        loop {
            while running.len() < IN_FLIGHT {
                let Some((name, path)) = pending.next() else {
                    break;
                };
                let me = self.clone();
                running.spawn(async move {
                    let r = me.properties(&path, mode).await;
                    (name, r)
                });
            }
            let Some(done) = running.join_next().await else {
                break;
            };
            let (name, r) = done.map_err(|e| Error::Protocol {
                path: self.socket.clone(),
                detail: one_line(&e.to_string()),
            })?;
            match r {
                Ok(props) => out.push(ServiceState::from_properties(
                    self.container.clone(),
                    &name,
                    &props,
                )),
                Err(zbus::Error::MethodError(..)) => {}
                Err(e) => return Err(Error::dbus(&self.socket, &e)),
            }
        }
        out.sort_by(|a, b| a.unit.cmp(&b.unit));
        Ok(out)
    }
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
    pub result: Result<Vec<ServiceState>, Error>,
}

/// The host's manager and every container's found under `proc_root`
/// (normally /proc), read at once; one [`Reading`] each, the host's first.
pub async fn read_all(proc_root: &Path) -> Vec<Reading> {
    let containers = scan(proc_root);
    let host = async {
        Reading {
            container: None,
            result: match Manager::host().await {
                Ok(m) => m.services().await,
                Err(e) => Err(e),
            },
        }
    };
    let guests = containers.iter().map(|c| async move {
        Reading {
            container: Some(c.label()),
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

    fn props(pairs: &[(&str, Value<'static>)]) -> HashMap<String, OwnedValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OwnedValue::try_from(v.clone()).unwrap()))
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
