//! Test helper: tries to create a BPF map, drops every capability with
//! spawnscope's own `caps::drop_to(&[])`, then prints its capability sets
//! and whether it can still create a BPF map, as `key value` lines: the
//! same call before and after the drop, so that a refusal afterwards is
//! the drop's doing and not this host's.

use std::process::ExitCode;

/// BPF_MAP_CREATE of a 1-entry array, which needs CAP_BPF (or
/// CAP_SYS_ADMIN): "ok", or the errno.
fn bpf_map_create() -> String {
    #[repr(C)]
    struct MapCreate {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        pad: [u8; 112],
    }
    let attr = MapCreate {
        map_type: 2,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        pad: [0; 112],
    };
    // SAFETY: bpf(2) reads `size` bytes of a zero-padded attribute.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            0,
            &attr as *const MapCreate,
            std::mem::size_of::<MapCreate>(),
        )
    };
    if fd < 0 {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        return format!("errno {errno}");
    }
    // SAFETY: closing the descriptor bpf(2) just returned to us.
    unsafe { libc::close(fd as i32) };
    "ok".to_string()
}

fn main() -> ExitCode {
    println!("bpf_map_create_before {}", bpf_map_create());
    if let Err(e) = spawnscope::caps::drop_to(&[]) {
        eprintln!("drop-caps: {e}");
        return ExitCode::from(1);
    }
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    for l in status.lines() {
        if let Some((k, v)) = l.split_once(':')
            && ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"].contains(&k)
        {
            println!("{k} {}", v.trim());
        }
    }
    println!("bpf_map_create {}", bpf_map_create());
    ExitCode::SUCCESS
}
