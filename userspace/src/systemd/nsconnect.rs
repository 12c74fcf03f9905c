//! Connecting to a container's manager from inside its PID namespace.
//!
//! systemd refuses a private-socket connection whose peer PID it cannot
//! see ("Incoming private connection from unprivileged client": the
//! kernel reports PID 0 for a peer outside the listener's PID namespace),
//! so a connection from the host's namespace to
//! `/proc/PID/root/run/systemd/private` is closed at once. As sd-bus does
//! for `systemctl -M`, a forked child joins the container's PID namespace
//! (and its user namespace when that differs from ours, becoming its
//! root), its own child connects, and the connected socket comes back
//! over a socket pair. The path is still resolved through the host's
//! /proc, so the mount namespace is left alone.
//!
//! The forked processes run only system calls (no allocation, no locks),
//! as a fork of a multi-threaded process must; everything they need is
//! prepared before the fork.

use std::{
    fs::File,
    io,
    mem::{size_of, zeroed},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::{ffi::OsStrExt, fs::MetadataExt, net::UnixStream},
    },
    path::Path,
    time::Duration,
};

/// What a forked child reports: an errno (0 for success), with the
/// connected socket attached on success.
type Report = i32;

/// Space for one `SCM_RIGHTS` message with one descriptor, aligned as
/// `cmsghdr` needs.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

/// Connects to the AF_UNIX stream `socket` from inside the PID (and, if
/// different from ours, user) namespace of `pid`, whose namespaces are
/// under `proc_root/PID/ns`. The stream is non-blocking. Blocks for at
/// most `timeout`.
pub fn connect(
    proc_root: &Path,
    pid: u32,
    socket: &Path,
    timeout: Duration,
) -> io::Result<UnixStream> {
    let ns = proc_root.join(pid.to_string()).join("ns");
    let pidns = OwnedFd::from(File::open(ns.join("pid"))?);
    let theirs_user = std::fs::metadata(ns.join("user"))?;
    let ours_user = std::fs::metadata("/proc/self/ns/user")?;
    let userns = if (theirs_user.dev(), theirs_user.ino()) == (ours_user.dev(), ours_user.ino()) {
        None
    } else {
        Some(OwnedFd::from(File::open(ns.join("user"))?))
    };

    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = socket.as_os_str().as_bytes();
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long",
        ));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let addr_len = (size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;

    let mut pair = [0 as libc::c_int; 2];
    // SAFETY: socketpair writes two descriptors into the array we own.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
            pair.as_mut_ptr(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair just returned these two descriptors, owned by no one else.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };

    // SAFETY: the child runs only async-signal-safe system calls on data
    // prepared above, and leaves by _exit.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(io::Error::last_os_error());
    }
    if child == 0 {
        // SAFETY: in the forked child; see child_main.
        unsafe {
            child_main(
                userns.as_ref().map(AsRawFd::as_raw_fd),
                pidns.as_raw_fd(),
                theirs.as_raw_fd(),
                &addr,
                addr_len,
            )
        }
    }
    drop(theirs);
    let result = receive(&ours, timeout);
    if result.is_err() {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(child, libc::SIGKILL) };
    }
    // SAFETY: reaping our own child; a null status pointer is allowed.
    unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
    result
}

/// The connected socket (or the errno) a child sends back, waiting at most
/// `timeout`.
fn receive(ours: &OwnedFd, timeout: Duration) -> io::Result<UnixStream> {
    let mut pfd = libc::pollfd {
        fd: ours.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one pollfd we own.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n == 0 {
        return Err(io::Error::from(io::ErrorKind::TimedOut));
    }
    let mut report: Report = -1;
    let mut iov = libc::iovec {
        iov_base: (&mut report as *mut Report).cast(),
        iov_len: size_of::<Report>(),
    };
    let mut cbuf = CmsgBuf([0; 64]);
    // SAFETY: msghdr is plain data; all zeroes is a valid value.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = cbuf.0.len() as _;
    // SAFETY: msg points at buffers that outlive the call.
    let got = unsafe { libc::recvmsg(ours.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: walking the control buffer recvmsg filled, by the kernel's
    // own lengths.
    let fd = unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        if !c.is_null() && (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS
        {
            Some(std::ptr::read_unaligned(
                libc::CMSG_DATA(c).cast::<libc::c_int>(),
            ))
        } else {
            None
        }
    };
    // SAFETY: a descriptor SCM_RIGHTS just installed in our table.
    let fd = fd.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    match (got as usize == size_of::<Report>(), report, fd) {
        (true, 0, Some(fd)) => Ok(UnixStream::from(fd)),
        (true, libc::EAGAIN, _) => Err(io::Error::from(io::ErrorKind::TimedOut)),
        (true, errno, _) if errno > 0 => Err(io::Error::from_raw_os_error(errno)),
        _ => Err(io::Error::other("the connecting child sent no socket")),
    }
}

/// Sends `report` over `to`, with `fd` attached when given.
///
/// # Safety
/// Async-signal-safe: callable in a forked child.
unsafe fn send_report(to: libc::c_int, report: Report, fd: Option<libc::c_int>) {
    let mut report = report;
    let mut iov = libc::iovec {
        iov_base: (&mut report as *mut Report).cast(),
        iov_len: size_of::<Report>(),
    };
    let mut cbuf = CmsgBuf([0; 64]);
    // SAFETY: msghdr is plain data; all zeroes is a valid value.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: one descriptor's control message in a buffer large
        // enough for it, filled by the libc macros' offsets.
        unsafe {
            let space = libc::CMSG_SPACE(size_of::<libc::c_int>() as u32) as usize;
            msg.msg_control = cbuf.0.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::c_int>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>(), fd);
        }
    }
    // SAFETY: msg points at buffers on this stack frame.
    unsafe { libc::sendmsg(to, &msg, 0) };
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// The forked child: joins the namespaces, forks the process that
/// connects (a process joins a PID namespace only by being born in it),
/// reaps it and exits.
///
/// # Safety
/// Only in a child just forked; never returns.
unsafe fn child_main(
    userns: Option<libc::c_int>,
    pidns: libc::c_int,
    to: libc::c_int,
    addr: &libc::sockaddr_un,
    addr_len: libc::socklen_t,
) -> ! {
    // SAFETY: system calls on descriptors and memory prepared before the fork.
    unsafe {
        if let Some(u) = userns
            && libc::setns(u, libc::CLONE_NEWUSER) != 0
        {
            send_report(to, errno(), None);
            libc::_exit(1);
        }
        if libc::setns(pidns, libc::CLONE_NEWPID) != 0 {
            send_report(to, errno(), None);
            libc::_exit(1);
        }
        let gc = libc::fork();
        if gc < 0 {
            send_report(to, errno(), None);
            libc::_exit(1);
        }
        if gc == 0 {
            // Root of the container's user namespace, so that systemd's
            // peer credentials and our EXTERNAL authentication say uid 0.
            if userns.is_some() && (libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0)
            {
                send_report(to, errno(), None);
                libc::_exit(1);
            }
            let fd = libc::socket(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            );
            if fd < 0 {
                send_report(to, errno(), None);
                libc::_exit(1);
            }
            if libc::connect(fd, (addr as *const libc::sockaddr_un).cast(), addr_len) != 0 {
                send_report(to, errno(), None);
                libc::_exit(1);
            }
            send_report(to, 0, Some(fd));
            libc::_exit(0);
        }
        libc::waitpid(gc, std::ptr::null_mut(), 0);
        libc::_exit(0)
    }
}
