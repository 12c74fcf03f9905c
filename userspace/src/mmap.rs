//! A read-only file mapping, for readers of large files that must not
//! hold a copy of them: journal files and the kernel's BTF.

use std::{fs::File, io, os::fd::AsRawFd};

/// A read-only mapping of a whole file, as long as it was when opened.
/// Only for files that never shrink while mapped (a shorter file would
/// fault the reader with SIGBUS): journal files, which journald only
/// appends to, and the kernel's BTF, which never changes.
pub(crate) struct Map {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Map {
    pub fn new(file: &File, len: usize) -> io::Result<Map> {
        if len == 0 {
            return Ok(Map {
                ptr: std::ptr::null_mut(),
                len: 0,
            });
        }
        // SAFETY: a fresh private read-only mapping of `len` bytes of an
        // open descriptor; the kernel picks the address. The mapping
        // outlives the descriptor, which may be closed afterwards.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Map { ptr, len })
    }

    /// The mapped length: the file's size when it was mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` maps `len` readable bytes until drop. The file may
        // change under us only as its kind allows (see the type): a
        // journal being appended to rewrites only header fields and the
        // tails of entry arrays, which readers take as plain integers and
        // validate like any untrusted input, so a change yields a wrong
        // number, never undefined control flow; none of the files mapped
        // shrinks, and readers check every offset against the mapped
        // length.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }

    /// Drops the pages already read from this process's resident set; they
    /// stay in the page cache, and touching them again faults them back.
    /// Keeps the reader's RSS bounded on journals far larger than memory.
    pub fn release(&self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: the range is exactly our own mapping. MADV_DONTNEED on a
        // private file mapping we never wrote only discards page table
        // entries: later reads fault the same file contents back in, so
        // slices handed out earlier stay valid.
        unsafe {
            libc::madvise(self.ptr, self.len, libc::MADV_DONTNEED);
        }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: unmaps exactly the mapping made in `new`; no slice of
            // it outlives `self` (they borrow it).
            unsafe {
                libc::munmap(self.ptr, self.len);
            }
        }
    }
}
