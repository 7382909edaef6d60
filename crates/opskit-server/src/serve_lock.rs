//! One `opskit serve` per SQLite database.
//!
//! Two server processes on one SQLite file would each run the monitor's scheduler on a file
//! lock instead of a lease in a database server, and each keep an in-memory cache that the
//! other's writes do not reach. So `opskit serve` takes an advisory `flock` on a sidecar file,
//! `DATABASE.serve-lock` next to the database, for as long as it runs; a second one is refused
//! with a message that names the database, the process that holds it, and PostgreSQL as the
//! way to run replicas.
//!
//! The lock is ours, not SQLite's (SQLite's own locks are `fcntl` locks on the database file,
//! which `flock` does not touch): the admin commands (`opskit user …`, `opskit apikey …`,
//! `opskit db init`) never take it and keep working while the server runs. The kernel drops
//! the lock when the process ends, however it ends (kill -9 included); the file stays, holding
//! the PID of the last holder, and is reused.

use std::fs::{File, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use sqlx::sqlite::SqliteConnectOptions;

use crate::Error;

/// Held while this process serves a SQLite database.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
    path: PathBuf,
}

impl ServeLock {
    /// The sidecar file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The sidecar lock file of a SQLite database file.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".serve-lock");
    PathBuf::from(name)
}

/// Takes the lock of `database_url` when it is a SQLite file (`None` for PostgreSQL and an
/// in-memory database); [`Error::DatabaseInUse`] when another process holds it.
pub fn acquire(database_url: &str) -> Result<Option<ServeLock>, Error> {
    if !database_url.starts_with("sqlite:") {
        return Ok(None);
    }
    let opts = SqliteConnectOptions::from_str(database_url)
        .map_err(|e| Error::BadDatabaseUrl(format!("{database_url}: {e}")))?;
    let db = opts.get_filename();
    if db.as_os_str().is_empty()
        || db.as_os_str() == ":memory:"
        || database_url.contains("mode=memory")
    {
        return Ok(None);
    }
    let db = std::path::absolute(db).unwrap_or_else(|_| db.to_path_buf());
    let path = lock_path(&db);
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    // A directory that does not exist is reported when the database is opened, as before.
    let Ok(mut file) = o.open(&path) else {
        return Ok(None);
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(Error::DatabaseInUse {
                path: db,
                pid: text.trim().parse().ok(),
            });
        }
        Err(TryLockError::Error(e)) => {
            // A file system without flock: nothing to enforce with, as before this lock.
            tracing::warn!(path = %path.display(), error = %e, "cannot lock the database's sidecar file; a second server on this SQLite database would not be refused");
            return Ok(None);
        }
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "{}", std::process::id());
    Ok(Some(ServeLock { _file: file, path }))
}
