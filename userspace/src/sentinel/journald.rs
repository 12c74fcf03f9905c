//! Alerts as structured journal entries, over journald's native protocol
//! (systemd.journal-fields(7), "Native Protocol"): one datagram per entry
//! to `/run/systemd/journal/socket`, each field `NAME=value\n`, or, for a
//! value with a newline, `NAME\n`, its length as a little-endian u64, the
//! value and `\n`. A log pipeline (journald forwarding, Vector, promtail)
//! then filters on `SPAWNSCOPE_UNIT=` or `SPAWNSCOPE_KIND=` without
//! parsing the message.
//!
//! Used when stderr is the journal's stream (`$JOURNAL_STREAM` names its
//! device and inode, as systemd sets it for a service): the entry replaces
//! the stderr line, so each alert is in the journal once. Run from a
//! terminal or by a test, alerts stay on stderr and nothing is written to
//! the host's journal.

use std::{
    io,
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
};

/// Where journald listens for native entries.
pub const SOCKET: &str = "/run/systemd/journal/socket";

/// One entry in the native protocol's framing, of fields' names and
/// values. Names are upper case, digits and `_`, and do not start with
/// `_`: those are journald's own.
pub fn entry<V: AsRef<[u8]>>(fields: &[(&str, V)]) -> Vec<u8> {
    let len = fields.iter().map(|(n, v)| n.len() + v.as_ref().len() + 10);
    let mut out = Vec::with_capacity(len.sum());
    for (name, value) in fields {
        let value = value.as_ref();
        out.extend_from_slice(name.as_bytes());
        if value.contains(&b'\n') {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        } else {
            out.push(b'=');
        }
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

/// The device and inode of the file open at `fd`.
fn file_id(fd: i32) -> Option<(u64, u64)> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a whole stat into the buffer it is given, and
    // it is read only when fstat says it did.
    unsafe {
        if libc::fstat(fd, st.as_mut_ptr()) != 0 {
            return None;
        }
        let st = st.assume_init();
        Some((st.st_dev, st.st_ino))
    }
}

/// Whether `$JOURNAL_STREAM` ("DEV:INO") names the file stderr writes to.
pub fn stderr_is_journal(var: Option<&str>) -> bool {
    let Some((dev, ino)) = var.and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    file_id(2) == Some((dev, ino))
}

pub struct Journald {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Journald {
    /// The journal, when stderr is its stream; else None.
    pub fn from_env() -> Option<Self> {
        let var = std::env::var("JOURNAL_STREAM").ok();
        if !stderr_is_journal(var.as_deref()) {
            return None;
        }
        Self::at(Path::new(SOCKET)).ok()
    }

    /// Entries to the datagram socket at `path`.
    pub fn at(path: &Path) -> io::Result<Self> {
        Ok(Self {
            socket: UnixDatagram::unbound()?,
            path: path.to_path_buf(),
        })
    }

    /// Sends one entry; an error (journald gone, or the entry too large for
    /// a datagram) leaves it to the caller to say it another way.
    pub fn send<V: AsRef<[u8]>>(&self, fields: &[(&str, V)]) -> io::Result<()> {
        let e = entry(fields);
        let n = self.socket.send_to(&e, &self.path)?;
        if n != e.len() {
            return Err(io::Error::other(format!("sent {n} of {} bytes", e.len())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_framed_and_a_newline_makes_a_value_binary() {
        let e = entry(&[
            ("MESSAGE", "one line"),
            ("SPAWNSCOPE_DETAIL", "a\nb"),
            ("PRIORITY", "4"),
        ]);
        let mut want = b"MESSAGE=one line\nSPAWNSCOPE_DETAIL\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"a\nb\nPRIORITY=4\n");
        assert_eq!(e, want);
    }

    #[test]
    fn an_entry_reaches_the_socket_as_one_datagram() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("socket");
        let rx = UnixDatagram::bind(&path).unwrap();
        let j = Journald::at(&path).unwrap();
        j.send(&[("MESSAGE", "x"), ("SPAWNSCOPE_UNIT", "a.service")])
            .unwrap();
        let mut buf = [0u8; 256];
        let k = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"MESSAGE=x\nSPAWNSCOPE_UNIT=a.service\n");
    }

    #[test]
    fn no_listener_is_an_error_to_fall_back_on() {
        let d = tempfile::tempdir().unwrap();
        let j = Journald::at(&d.path().join("absent")).unwrap();
        assert!(j.send(&[("MESSAGE", "x")]).is_err());
    }

    #[test]
    fn journal_stream_must_name_stderr() {
        assert!(!stderr_is_journal(None));
        assert!(!stderr_is_journal(Some("")));
        assert!(!stderr_is_journal(Some("x:y")));
        let (dev, ino) = file_id(2).unwrap();
        assert!(stderr_is_journal(Some(&format!("{dev}:{ino}"))));
        let other = format!("{dev}:{}", ino + 1);
        assert!(!stderr_is_journal(Some(&other)));
    }
}
