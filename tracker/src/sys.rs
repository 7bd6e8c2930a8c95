//! The two system calls the tracker needs that rustix does not wrap, both
//! for an inode's generation: `ioctl(FS_IOC_GETVERSION)` on a descriptor
//! and `name_to_handle_at(2)` on a path.
//!
//! Why: `st_dev`/`st_ino` name a file only while it lives. Once a file has
//! no name and no open descriptor (replaced behind the tracker's back while
//! its handles were suspended), the file system frees its inode and may give
//! the number to the next file it creates (ext4 reuses the lowest free
//! number at once). A restore that compared `st_ino` alone would then reopen
//! a stranger's file. NFS meets the same problem with the same answer: the
//! inode's generation number changes when its number is reused, and a file
//! handle (which carries it) to a dead inode is `ESTALE`.
//!
//! A restore asks the descriptor it just opened (`FS_IOC_GETVERSION`: about
//! 0.1 us here, where `name_to_handle_at` on a descriptor costs 0.6 us). An
//! unlink has only a path, and asks `name_to_handle_at`, whose handle
//! carries the generation too; it is compared with the handle taken when the
//! file was first opened.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::io::Errno;

/// `struct file_handle` with room for the largest handle.
#[repr(C)]
struct FileHandle {
    handle_bytes: libc::c_uint,
    handle_type: libc::c_int,
    f_handle: [u8; libc::MAX_HANDLE_SZ as usize],
}

/// A 64-bit FNV-1a digest of the handle's type and bytes, or 0 where the
/// file system gives no handles (`EOPNOTSUPP`): the identity falls back to
/// `st_dev`/`st_ino` there.
fn handle_at(dirfd: impl AsFd, path: &[u8], flags: libc::c_int) -> Result<u64, Errno> {
    let path = CString::new(path).map_err(|_| Errno::INVAL)?;
    let mut h = FileHandle {
        handle_bytes: libc::MAX_HANDLE_SZ as libc::c_uint,
        handle_type: 0,
        f_handle: [0; libc::MAX_HANDLE_SZ as usize],
    };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `h` is a `struct file_handle` header followed by
    // `handle_bytes` bytes of room, `path` is NUL-terminated, `mount_id` is
    // an int, and all three outlive the call, which writes nothing else.
    let r = unsafe {
        libc::name_to_handle_at(
            dirfd.as_fd().as_raw_fd(),
            path.as_ptr(),
            (&mut h as *mut FileHandle).cast::<libc::file_handle>(),
            &mut mount_id,
            flags,
        )
    };
    if r < 0 {
        let e = Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO);
        return match e {
            Errno::OPNOTSUPP | Errno::NOSYS | Errno::OVERFLOW => Ok(0),
            e => Err(e),
        };
    }
    let len = (h.handle_bytes as usize).min(h.f_handle.len());
    let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in h.handle_type.to_le_bytes().iter().chain(&h.f_handle[..len]) {
        digest = (digest ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    Ok(digest)
}

/// The generation of the inode `fd` is open on (`FS_IOC_GETVERSION`), or 0
/// where the file system does not keep one (`ENOTTY`: tmpfs, for one).
pub(crate) fn generation(fd: impl AsFd) -> Result<u64, Errno> {
    let mut generation: libc::c_long = 0;
    // SAFETY: FS_IOC_GETVERSION writes at most its declared size (a long;
    // the file systems that implement it write an int) to the pointer,
    // which points to a zeroed long that outlives the call.
    let r = unsafe {
        libc::ioctl(
            fd.as_fd().as_raw_fd(),
            libc::FS_IOC_GETVERSION,
            &mut generation as *mut libc::c_long,
        )
    };
    if r < 0 {
        let e = Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO);
        return match e {
            Errno::NOTTY | Errno::OPNOTSUPP | Errno::INVAL => Ok(0),
            e => Err(e),
        };
    }
    // The kernel wrote a 32-bit unsigned generation.
    Ok(u64::from(generation as u32))
}

/// The file-handle digest of the file `fd` is open on.
pub(crate) fn handle_digest(fd: impl AsFd) -> Result<u64, Errno> {
    handle_at(fd, b"", libc::AT_EMPTY_PATH)
}

/// The file-handle digest of the file `dir`/`path` leads to (following a
/// final symbolic link, as `open` does).
pub(crate) fn handle_digest_at(dir: impl AsFd, path: &Path) -> Result<u64, Errno> {
    handle_at(dir, path.as_os_str().as_bytes(), libc::AT_SYMLINK_FOLLOW)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{Mode, OFlags, CWD};

    #[test]
    fn a_reused_inode_number_has_another_generation_and_handle() {
        let dir = std::env::temp_dir().join(format!("fdlab-sys-gen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _rm = Rm(dir.clone());
        let path = dir.join("f");
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC;
        let fd = rustix::fs::open(&path, flags, Mode::RUSR | Mode::WUSR).unwrap();
        let ino = rustix::fs::fstat(&fd).unwrap().st_ino;
        let generation_before = generation(&fd).unwrap();
        let digest_before = handle_digest(&fd).unwrap();
        assert_eq!(handle_digest_at(CWD, &path).unwrap(), digest_before);
        drop(fd);
        // Free the inode, and create files until one gets its number back:
        // at once on ext4, which is where this must be seen.
        std::fs::remove_file(&path).unwrap();
        for i in 0..64 {
            let p = dir.join(format!("g{i}"));
            std::fs::write(&p, b"").unwrap();
            let st = rustix::fs::stat(&p).unwrap();
            if st.st_ino == ino {
                assert_ne!(handle_digest_at(CWD, &p).unwrap(), digest_before);
                let fd =
                    rustix::fs::open(&p, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).unwrap();
                assert_ne!(generation(&fd).unwrap(), generation_before);
                return;
            }
        }
        const EXT4_SUPER_MAGIC: i64 = 0xEF53;
        let fs = rustix::fs::statfs(&dir).unwrap();
        assert_ne!(
            fs.f_type as i64, EXT4_SUPER_MAGIC,
            "ext4 reuses inode numbers at once"
        );
    }

    struct Rm(std::path::PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
