//! Probes for kernel facilities, by asking the kernel to make a trivial
//! instance (privileged callers only).

use std::io;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_TRACE_RAW_TP: u32 = 23;

/// The head of `union bpf_attr` for BPF_PROG_LOAD, up to `attach_prog_fd`
/// (Linux 5.5); the kernel accepts a shorter attr than its own.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_prog_fd: u32,
    /// The struct's tail padding, made a field so that it is zero: the
    /// kernel rejects non-zero bytes past the fields it knows (here,
    /// `core_relo_cnt` from 5.17).
    _pad: u32,
}

/// Whether the kernel loads a `tp_btf` program (`r0 = 0; exit`) attached
/// by `attach_btf_id`, a `btf_trace_*` typedef of the running kernel's
/// BTF. Ok(false) when the kernel does not know the program type or the
/// attach fields (EINVAL, E2BIG before Linux 5.5); other refusals, such as
/// EPERM, are errors: they say nothing about support.
pub fn tp_btf_supported(attach_btf_id: u32) -> io::Result<bool> {
    // BPF_MOV64_IMM(r0, 0); BPF_EXIT_INSN().
    let insns: [u64; 2] = [0xb7, 0x95];
    let license = c"GPL";
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_TRACING,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        expected_attach_type: BPF_TRACE_RAW_TP,
        attach_btf_id,
        ..ProgLoadAttr::default()
    };
    // SAFETY: attr is a valid BPF_PROG_LOAD attr of the size passed; the
    // instruction and license buffers it points to outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>() as u32,
        )
    };
    if fd >= 0 {
        // SAFETY: fd is the program the kernel just created, owned here.
        unsafe { libc::close(fd as libc::c_int) };
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL | libc::E2BIG) => Ok(false),
        _ => Err(e),
    }
}

/// Whether the kernel creates a BPF ring buffer map.
pub fn ringbuf_supported() -> Result<bool, String> {
    aya::sys::is_map_supported(aya::maps::MapType::RingBuf).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_matches_the_kernel_layout() {
        // Offsets from include/uapi/linux/bpf.h.
        let a = ProgLoadAttr::default();
        let base = &a as *const _ as usize;
        assert_eq!(&a.expected_attach_type as *const _ as usize - base, 68);
        assert_eq!(&a.attach_btf_id as *const _ as usize - base, 108);
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 120);
    }
}
