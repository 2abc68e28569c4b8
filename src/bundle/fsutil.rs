//! Durable file-system primitives for the installer: fsync of files and directories, atomic
//! replacement (tmp + rename + dir fsync), free-space query (statvfs), an exclusive lock, and the
//! fault-injection hook `ENDFACE_FAULT_AT=<step>` that aborts the process at a named step.

use super::BundleError;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Environment variable naming the step at which the process aborts (testing crash safety).
pub const FAULT_ENV: &str = "ENDFACE_FAULT_AT";

/// Every named fault point, in the order an install (then a rollback, then a boot) meets them.
pub const FAULT_STEPS: &[&str] = &[
    "install.locked",
    "install.verified",
    "install.unpack_partial",
    "install.unpacked",
    "install.selftest_passed",
    "install.prepare.tmp_written",
    "install.prepare.renamed",
    "install.slot_cleared",
    "install.slot_placed",
    "install.switch.tmp_written",
    "install.switch.renamed",
    "install.done",
    "rollback.switch.tmp_written",
    "rollback.switch.renamed",
    "boot.switch.tmp_written",
    "boot.switch.renamed",
    "boot.trial.tmp_written",
    "boot.trial.renamed",
    "commit.tmp_written",
    "commit.renamed",
];

/// Abort the process (no unwinding, no destructors, like a power cut for the files written so
/// far) when `ENDFACE_FAULT_AT` names `step`.
pub fn fault_point(step: &str) {
    if let Some(want) = std::env::var_os(FAULT_ENV) {
        if want == step {
            eprintln!("endface: fault injection: aborting at {step}");
            std::process::abort();
        }
    }
}

/// Free bytes available to unprivileged writers on the file system holding `path`.
pub fn statvfs_free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: statvfs is plain old data; zeroed is a valid value and the kernel fills it.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a valid NUL-terminated string, st a valid out pointer.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between targets
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// fsync a directory so that renames and creations inside it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), BundleError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| BundleError::io(dir, e))
}

/// Create a directory (and parents) and fsync its parent.
pub(crate) fn create_dir_durable(dir: &Path) -> Result<(), BundleError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| BundleError::io(dir, e))?;
    if let Some(parent) = dir.parent() {
        fsync_dir(parent)?;
    }
    Ok(())
}

/// Write a whole file and fsync it (not its directory).
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BundleError> {
    let mut f = File::create(path).map_err(|e| BundleError::io(path, e))?;
    f.write_all(bytes).map_err(|e| BundleError::io(path, e))?;
    f.sync_all().map_err(|e| BundleError::io(path, e))
}

/// Replace `path` atomically: write `<path>.tmp` (owned like `owner_of`), fsync, rename over
/// `path`, fsync the directory.
/// Fault points `<fault_prefix>.tmp_written` and `<fault_prefix>.renamed` sit between the steps.
pub(crate) fn replace_atomic(
    path: &Path,
    bytes: &[u8],
    fault_prefix: &str,
    owner_of: &Path,
) -> Result<(), BundleError> {
    let tmp = tmp_path(path);
    write_synced(&tmp, bytes)?;
    adopt_owner(&tmp, owner_of)?;
    fault_point(&format!("{fault_prefix}.tmp_written"));
    fs::rename(&tmp, path).map_err(|e| BundleError::io(path, e))?;
    fault_point(&format!("{fault_prefix}.renamed"));
    if let Some(dir) = path.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// fsync every file and directory under `root` (directories after their contents).
pub(crate) fn sync_tree(root: &Path) -> Result<(), BundleError> {
    let entries = fs::read_dir(root).map_err(|e| BundleError::io(root, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| BundleError::io(root, e))?;
        let path = entry.path();
        let ft = entry.file_type().map_err(|e| BundleError::io(&path, e))?;
        if ft.is_dir() {
            sync_tree(&path)?;
        } else {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| BundleError::io(&path, e))?;
        }
    }
    fsync_dir(root)
}

/// Remove a directory tree if present and fsync its parent.
pub(crate) fn remove_tree_durable(dir: &Path) -> Result<(), BundleError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(BundleError::io(dir, e)),
    }
    if let Some(parent) = dir.parent() {
        fsync_dir(parent)?;
    }
    Ok(())
}

/// An exclusive advisory lock on a file, released when dropped (or when the process dies).
pub(crate) struct Lock {
    _file: File,
}

pub(crate) fn lock_exclusive(path: &Path) -> Result<Lock, BundleError> {
    // flock works on a read-only descriptor: the daemon's user can lock a file root created.
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)
                .map_err(|e| BundleError::io(path, e))?;
            if let Some(root) = path.parent() {
                adopt_owner(path, root)?;
            }
            f
        }
        Err(e) => return Err(BundleError::io(path, e)),
    };
    // SAFETY: flock on a valid, open file descriptor.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    if rc != 0 {
        return Err(BundleError::io(path, std::io::Error::last_os_error()));
    }
    Ok(Lock { _file: file })
}

/// When running as root, give `path` the owner of `root` (the state root belongs to the
/// daemon's user, which must be able to append to the journal and replace `current` after a
/// technician ran `sudo endface bundle install`). A no-op for other users.
pub(crate) fn adopt_owner(path: &Path, root: &Path) -> Result<(), BundleError> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let want = fs::metadata(root).map_err(|e| BundleError::io(root, e))?;
    let have = fs::symlink_metadata(path).map_err(|e| BundleError::io(path, e))?;
    if (have.uid(), have.gid()) != (want.uid(), want.gid()) {
        std::os::unix::fs::lchown(path, Some(want.uid()), Some(want.gid()))
            .map_err(|e| BundleError::io(path, e))?;
    }
    Ok(())
}
