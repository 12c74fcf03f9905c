//! A minimal D-Bus client: authentication, method calls out, replies in,
//! many calls in flight on one connection.
//!
//! Not zbus's connection: systemd's private socket stamps its messages
//! with the sender `org.freedesktop.systemd1`, a well-known name where
//! D-Bus peers send unique ones, and zbus 5's reader panics on such a
//! header. Messages are still encoded by zbus and bodies decoded by
//! zvariant; this module only frames them and reads the header fields a
//! reply needs (its type, reply serial, error name and signature).

use std::{io, time::Duration};

use serde::de::DeserializeOwned;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::UnixStream,
};
use zbus::zvariant::{
    Endian, OwnedValue, Type, Value,
    serialized::{Context, Data},
};

/// The D-Bus limit on one message.
const MAX_MESSAGE: usize = 128 << 20;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;

/// What went wrong on the wire.
#[derive(Debug)]
pub enum WireError {
    Io(io::Error),
    /// Malformed or unexpected data.
    Protocol(String),
    /// A D-Bus error reply: its name and message.
    Method {
        name: String,
        message: String,
    },
}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> Self {
        WireError::Io(e)
    }
}

/// A reply to one of our calls.
pub struct Reply {
    pub reply_serial: u32,
    /// The error reply's name and first string argument, for an error.
    error: Option<(String, String)>,
    signature: String,
    endian: Endian,
    bytes: Vec<u8>,
    body_off: usize,
}

impl Reply {
    /// Its body as `T`, or the D-Bus error it carries.
    pub fn body<T: DeserializeOwned + Type>(&self) -> Result<T, WireError> {
        if let Some((name, message)) = &self.error {
            return Err(WireError::Method {
                name: name.clone(),
                message: message.clone(),
            });
        }
        // A reply's arguments are T's fields when T is a struct.
        let want = T::SIGNATURE.to_string();
        if self.signature != want && format!("({})", self.signature) != want {
            return Err(WireError::Protocol(format!(
                "reply of signature {:?}, expected {want:?}",
                self.signature
            )));
        }
        let data = Data::new(
            &self.bytes[self.body_off..],
            Context::new_dbus(self.endian, 0),
        );
        data.deserialize::<T>()
            .map(|(t, _)| t)
            .map_err(|e| WireError::Protocol(format!("reply body: {e}")))
    }
}

/// A method call, encoded.
pub struct Call {
    pub serial: u32,
    pub bytes: Vec<u8>,
}

/// Encodes a method call to `destination` (None on a peer-to-peer
/// connection).
pub fn call<B>(
    destination: Option<&str>,
    path: &str,
    interface: &str,
    member: &str,
    body: &B,
) -> Result<Call, WireError>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
{
    let encode = || -> zbus::Result<zbus::Message> {
        let mut b = zbus::Message::method_call(path, member)?.interface(interface)?;
        if let Some(d) = destination {
            b = b.destination(d)?;
        }
        b.build(body)
    };
    let msg = encode().map_err(|e| WireError::Protocol(format!("encoding {member}: {e}")))?;
    Ok(Call {
        serial: msg.primary_header().serial_num().get(),
        bytes: msg.data().bytes().to_vec(),
    })
}

/// One authenticated connection.
pub struct Wire {
    stream: UnixStream,
    buf: Vec<u8>,
    timeout: Duration,
}

impl Wire {
    /// Authenticates (EXTERNAL, as our effective uid) on `stream`; on a
    /// bus, also says Hello. Each read waits at most `timeout`.
    pub async fn open(stream: UnixStream, bus: bool, timeout: Duration) -> Result<Self, WireError> {
        let mut w = Wire {
            stream,
            buf: Vec::new(),
            timeout,
        };
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() }.to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        w.write(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
            .await?;
        let line = w.read_line().await?;
        if !line.starts_with("OK ") {
            return Err(WireError::Protocol(format!(
                "authentication refused: {}",
                line.trim()
            )));
        }
        w.write(b"BEGIN\r\n").await?;
        if !bus {
            w.await_running().await?;
        }
        if bus {
            let hello = call(
                Some("org.freedesktop.DBus"),
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "Hello",
                &(),
            )?;
            w.write(&hello.bytes).await?;
            loop {
                let r = w.recv().await?;
                if r.reply_serial == hello.serial {
                    let _name: String = r.body()?;
                    break;
                }
            }
        }
        Ok(w)
    }

    /// Waits until the server runs the protocol, pinging it. sd-bus
    /// (systemd's private socket) reads `BEGIN` and whatever follows in one
    /// go but dispatches the rest only when more bytes arrive: a call sent
    /// right behind `BEGIN` can sit unanswered until the connection
    /// closes. A ping left unanswered for a moment is followed by another,
    /// whose bytes wake it; any reply means the server is past `BEGIN`.
    async fn await_running(&mut self) -> Result<(), WireError> {
        let step = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        loop {
            let ping = call(None, "/", "org.freedesktop.DBus.Peer", "Ping", &())?;
            self.write(&ping.bytes).await?;
            match tokio::time::timeout(step, self.next_reply()).await {
                Ok(r) => return r.map(|_| ()),
                Err(_) if waited < self.timeout => waited += step,
                Err(_) => return Err(WireError::Io(io::ErrorKind::TimedOut.into())),
            }
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        let t = self.timeout;
        match tokio::time::timeout(t, self.stream.write_all(bytes)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(WireError::Io(io::ErrorKind::TimedOut.into())),
        }
    }

    /// Reads more into the buffer; end of stream is an error.
    async fn fill(&mut self) -> Result<(), WireError> {
        // Straight into the buffer: a chunk array here would sit in every
        // future that awaits this one.
        self.buf.reserve(64 * 1024);
        let n = {
            let read = self.stream.read_buf(&mut self.buf);
            match tokio::time::timeout(self.timeout, read).await {
                Ok(r) => r?,
                Err(_) => return Err(WireError::Io(io::ErrorKind::TimedOut.into())),
            }
        };
        if n == 0 {
            return Err(WireError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(())
    }

    async fn read_line(&mut self) -> Result<String, WireError> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).collect();
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            if self.buf.len() > 16 * 1024 {
                return Err(WireError::Protocol("authentication line too long".into()));
            }
            self.fill().await?;
        }
    }

    /// The next reply or error reply to any of our calls, within the
    /// timeout: systemd sends its signals to every private connection, and
    /// a steady stream of them must not stand in for a reply.
    pub async fn recv(&mut self) -> Result<Reply, WireError> {
        match tokio::time::timeout(self.timeout, self.next_reply()).await {
            Ok(r) => r,
            Err(_) => Err(WireError::Io(io::ErrorKind::TimedOut.into())),
        }
    }

    /// The next reply or error reply; signals and calls to us are skipped.
    async fn next_reply(&mut self) -> Result<Reply, WireError> {
        loop {
            while self.buf.len() < 16 {
                self.fill().await?;
            }
            let endian = match self.buf[0] {
                b'l' => Endian::Little,
                b'B' => Endian::Big,
                b => return Err(WireError::Protocol(format!("bad endianness byte {b:#x}"))),
            };
            let u32_at = |i: usize, buf: &[u8]| {
                let b = [buf[i], buf[i + 1], buf[i + 2], buf[i + 3]];
                match endian {
                    Endian::Little => u32::from_le_bytes(b),
                    Endian::Big => u32::from_be_bytes(b),
                }
            };
            let body_len = u32_at(4, &self.buf) as usize;
            let fields_len = u32_at(12, &self.buf) as usize;
            let header_end = 16usize.saturating_add(fields_len);
            let body_off = header_end.saturating_add(7) & !7;
            let total = body_off.saturating_add(body_len);
            if total > MAX_MESSAGE {
                return Err(WireError::Protocol(format!("message of {total} bytes")));
            }
            while self.buf.len() < total {
                self.fill().await?;
            }
            let bytes: Vec<u8> = self.buf.drain(..total).collect();
            let kind = bytes[1];
            if kind != METHOD_RETURN && kind != ERROR {
                continue;
            }
            type Header = (u8, u8, u8, u8, u32, u32, Vec<(u8, OwnedValue)>);
            let data = Data::new(&bytes[..header_end], Context::new_dbus(endian, 0));
            let (header, _): (Header, _) = data
                .deserialize()
                .map_err(|e| WireError::Protocol(format!("message header: {e}")))?;
            let mut reply_serial = 0;
            let mut error_name = None;
            let mut signature = String::new();
            for (code, v) in &header.6 {
                match (code, &**v) {
                    (4, Value::Str(s)) => error_name = Some(s.to_string()),
                    (5, Value::U32(n)) => reply_serial = *n,
                    (8, Value::Signature(s)) => signature = s.to_string(),
                    _ => {}
                }
            }
            let mut r = Reply {
                reply_serial,
                error: None,
                signature,
                endian,
                bytes,
                body_off,
            };
            if let Some(name) = error_name {
                // An error's first argument, when a string, is its message.
                let message = if r.signature.starts_with('s') {
                    Data::new(&r.bytes[r.body_off..], Context::new_dbus(endian, 0))
                        .deserialize::<String>()
                        .map(|(s, _)| s)
                        .unwrap_or_default()
                } else {
                    String::new()
                };
                r.error = Some((name, message));
            }
            return Ok(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_encodes_its_serial_and_body() {
        let c = call(
            None,
            "/org/freedesktop/systemd1",
            "org.freedesktop.DBus.Properties",
            "GetAll",
            &"org.freedesktop.systemd1.Unit",
        )
        .unwrap();
        assert_eq!(c.bytes[0], b'l', "little-endian");
        assert_eq!(c.bytes[1], 1, "method call");
        assert_eq!(
            u32::from_le_bytes(c.bytes[8..12].try_into().unwrap()),
            c.serial
        );
    }
}
