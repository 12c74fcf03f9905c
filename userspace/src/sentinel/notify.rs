//! The systemd notification protocol (sd_notify(3)): `READY=1` once the
//! probes are attached, `WATCHDOG=1` from the poll loop, `STOPPING=1` at
//! the end. Outside a `Type=notify` unit ($NOTIFY_SOCKET unset) every call
//! does nothing.

use std::{
    ffi::OsString,
    os::{
        linux::net::SocketAddrExt,
        unix::{
            ffi::OsStrExt,
            net::{SocketAddr, UnixDatagram},
        },
    },
    time::Duration,
};

pub struct Notifier {
    socket: Option<(UnixDatagram, SocketAddr)>,
    /// Half of systemd's WatchdogSec, when the unit has one for us.
    pub watchdog_every: Option<Duration>,
}

impl Notifier {
    /// From $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID.
    pub fn from_env() -> Self {
        Self::from_vars(
            std::env::var_os("NOTIFY_SOCKET"),
            std::env::var("WATCHDOG_USEC").ok(),
            std::env::var("WATCHDOG_PID").ok(),
            std::process::id(),
        )
    }

    fn from_vars(
        socket: Option<OsString>,
        usec: Option<String>,
        pid: Option<String>,
        me: u32,
    ) -> Self {
        let socket = socket.and_then(|path| {
            let bytes = path.as_bytes();
            // "@name" is an abstract socket.
            let addr = match bytes.strip_prefix(b"@") {
                Some(name) => SocketAddr::from_abstract_name(name).ok()?,
                None => SocketAddr::from_pathname(&path).ok()?,
            };
            Some((UnixDatagram::unbound().ok()?, addr))
        });
        // The watchdog is ours unless it names another process.
        let ours = pid.is_none_or(|p| p.trim().parse::<u32>().ok() == Some(me));
        let watchdog_every = usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && ours)
            .map(|u| Duration::from_micros(u / 2));
        Self {
            socket,
            watchdog_every,
        }
    }

    fn send(&self, msg: &str) {
        if let Some((sock, addr)) = &self.socket {
            // Nothing to do about a manager that does not listen.
            let _ = sock.send_to_addr(msg.as_bytes(), addr);
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_the_socket_named() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::from_vars(
            Some(path.clone().into_os_string()),
            Some("20000000".into()),
            None,
            7,
        );
        assert_eq!(n.watchdog_every, Some(Duration::from_secs(10)));
        n.ready("tracing");
        n.watchdog();
        let mut buf = [0u8; 64];
        let k = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"READY=1\nSTATUS=tracing");
        let k = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"WATCHDOG=1");
    }

    #[test]
    fn no_socket_no_watchdog_or_another_process_watchdog() {
        let n = Notifier::from_vars(None, None, None, 7);
        assert!(n.socket.is_none() && n.watchdog_every.is_none());
        n.ready("x");
        let n = Notifier::from_vars(None, Some("20000000".into()), Some("8".into()), 7);
        assert_eq!(n.watchdog_every, None, "WATCHDOG_PID names another process");
        let n = Notifier::from_vars(None, Some("20000000".into()), Some("7".into()), 7);
        assert_eq!(n.watchdog_every, Some(Duration::from_secs(10)));
    }
}
