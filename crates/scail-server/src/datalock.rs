//! One server per data directory. A second server on the same directory would requeue the first
//! one's running job and delete its work folder, so start takes an exclusive `flock` on
//! `DATA_DIR/scail.lock` before touching anything there and holds it for the server's life. The
//! kernel drops the lock when the process dies, so a crash never leaves a stale lock behind.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "scail.lock";

/// Held while the server runs; dropping it releases the directory.
#[derive(Debug)]
pub struct DataLock {
    // The lock lives as long as this open file.
    _file: File,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the data directory {dir} is in use by another scail server{}; stop it or choose another \
         --data-dir",
        .pid.map(|p| format!(" (process {p})")).unwrap_or_default()
    )]
    InUse { dir: String, pid: Option<u32> },
    #[error("locking the data directory {dir} ({path}): {source}")]
    Io {
        dir: String,
        path: String,
        source: std::io::Error,
    },
}

impl DataLock {
    /// Takes the lock or says who holds it. Never waits.
    pub fn acquire(data_dir: &Path) -> Result<DataLock, LockError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            dir: data_dir.display().to_string(),
            path: path.display().to_string(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        if !try_lock(&file).map_err(io)? {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(LockError::InUse {
                dir: data_dir.display().to_string(),
                pid: text.trim().parse().ok(),
            });
        }
        // Ours now: record the process id for the message a second server prints.
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(DataLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `Ok(false)` when another open file holds the lock (in this process or another).
#[cfg(unix)]
fn try_lock(f: &File) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    loop {
        // SAFETY: flock on a file descriptor we own; no memory is passed.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

/// Elsewhere there is no advisory lock to take; the server runs unguarded as before.
#[cfg(not(unix))]
fn try_lock(_f: &File) -> std::io::Result<bool> {
    Ok(true)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_with_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let first = DataLock::acquire(d.path()).unwrap();
        let err = DataLock::acquire(d.path()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&d.path().display().to_string()), "{msg}");
        assert!(
            msg.contains(&format!("process {}", std::process::id())),
            "{msg}"
        );
        assert!(matches!(err, LockError::InUse { pid: Some(_), .. }));
        drop(first);
        let again = DataLock::acquire(d.path()).expect("released on drop");
        assert_eq!(
            std::fs::read_to_string(again.path()).unwrap().trim(),
            std::process::id().to_string()
        );
    }

    #[test]
    fn missing_directory_is_an_io_error() {
        let d = tempfile::tempdir().unwrap();
        let err = DataLock::acquire(&d.path().join("nope")).unwrap_err();
        assert!(matches!(err, LockError::Io { .. }), "{err}");
    }
}
