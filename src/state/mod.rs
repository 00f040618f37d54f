//! Persisted state of each tenant: first-flagged times and the append-only audit log.
//!
//! Layout under the state directory: `<tenant>/state.json` holds when each token was first
//! flagged for deletion, and `<tenant>/audit.jsonl` receives one JSON record per event.
//! `<tenant>/lock` is held with an exclusive file lock for the whole run, so two patrol
//! processes never audit the same tenant from the same state at once.
//!
//! Writes of `state.json` are atomic: a temporary file in the same directory is written,
//! flushed to disk, and renamed over the old one, then the directory is synced. A missing
//! file starts empty. An unreadable one is moved aside and reported, and the caller must then
//! delete nothing in that run, since every grace period starts anew.

mod log;

pub use log::{AuditLog, Event};

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const STATE_FILE: &str = "state.json";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "cannot create state directory {path}: {source}; check [state] dir and its permissions"
    )]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another patrol process is auditing this tenant (lock {path} is held)")]
    Busy { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    #[serde(default)]
    first_flagged: BTreeMap<String, DateTime<Utc>>,
}

/// The state of one tenant, locked for the lifetime of this value.
#[derive(Debug)]
pub struct TenantState {
    dir: PathBuf,
    /// The exclusive lock; `None` for a read-only view, which never saves.
    _lock: Option<File>,
    /// When each token currently flagged for deletion was first flagged.
    pub first_flagged: BTreeMap<String, DateTime<Utc>>,
    /// Set when the state file existed but could not be read and was moved aside.
    pub problem: Option<String>,
}

impl TenantState {
    /// Opens (creating if needed) the state of `tenant` under `root` and locks it.
    pub fn open(root: &Path, tenant: &str) -> Result<TenantState, StateError> {
        let dir = root.join(tenant);
        fs::create_dir_all(&dir).map_err(|source| StateError::CreateDir {
            path: dir.clone(),
            source,
        })?;

        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| StateError::Lock {
                path: lock_path.clone(),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(StateError::Busy { path: lock_path }),
            Err(fs::TryLockError::Error(source)) => {
                return Err(StateError::Lock {
                    path: lock_path,
                    source,
                });
            }
        }

        let (first_flagged, problem) = read_state(&dir, true);
        Ok(TenantState {
            dir,
            _lock: Some(lock),
            first_flagged,
            problem,
        })
    }

    /// Reads the state of `tenant` without creating, locking or moving anything, for
    /// forecasts. A missing or unreadable state reads as empty.
    pub fn read_only(root: &Path, tenant: &str) -> TenantState {
        let dir = root.join(tenant);
        let (first_flagged, problem) = read_state(&dir, false);
        TenantState {
            dir,
            _lock: None,
            first_flagged,
            problem,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the first-flagged times atomically.
    ///
    /// # Panics
    ///
    /// On a read-only view, which must never write.
    pub fn save(&self) -> Result<(), StateError> {
        assert!(self._lock.is_some(), "a read-only state view was saved");
        let file = StateFile {
            version: FORMAT_VERSION,
            first_flagged: self.first_flagged.clone(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file).expect("state serializes");
        bytes.push(b'\n');
        write_atomically(&self.dir.join(STATE_FILE), &bytes)
    }
}

fn read_state(dir: &Path, repair: bool) -> (BTreeMap<String, DateTime<Utc>>, Option<String>) {
    let path = dir.join(STATE_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return (BTreeMap::new(), None);
        }
        Err(error) if !repair => return (BTreeMap::new(), Some(error.to_string())),
        Err(error) => return (BTreeMap::new(), Some(move_aside(&path, &error.to_string()))),
    };
    match serde_json::from_slice::<StateFile>(&bytes) {
        Ok(file) if file.version == FORMAT_VERSION => (file.first_flagged, None),
        Ok(file) => {
            let reason = format!("unsupported state format version {}", file.version);
            let problem = if repair {
                move_aside(&path, &reason)
            } else {
                reason
            };
            (BTreeMap::new(), Some(problem))
        }
        Err(error) if !repair => (BTreeMap::new(), Some(error.to_string())),
        Err(error) => (BTreeMap::new(), Some(move_aside(&path, &error.to_string()))),
    }
}

/// Renames an unreadable state file so that it is kept for inspection, and returns a
/// description for the log and the breaker.
fn move_aside(path: &Path, reason: &str) -> String {
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
    let aside = path.with_extension(format!("json.unreadable-{stamp}"));
    let moved = match fs::rename(path, &aside) {
        Ok(()) => format!("moved to {}", aside.display()),
        Err(error) => format!("could not be moved aside: {error}"),
    };
    let message = format!(
        "state file {} is unreadable ({reason}); {moved}",
        path.display()
    );
    tracing::error!(path = %path.display(), %reason, "state file is unreadable; every grace period starts anew and this run deletes nothing");
    message
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let error = |source| StateError::Write {
        path: path.to_owned(),
        source,
    };
    let temporary = path.with_extension("tmp");
    let mut file = File::create(&temporary).map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.sync_all().map_err(error)?;
    drop(file);
    fs::rename(&temporary, path).map_err(error)?;
    if let Some(parent) = path.parent() {
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_flagged_times_survive_reopening() {
        let root = tempfile::tempdir().unwrap();
        let instant = Utc::now();
        {
            let mut state = TenantState::open(root.path(), "acme").unwrap();
            assert!(state.first_flagged.is_empty());
            state.first_flagged.insert("t1".into(), instant);
            state.save().unwrap();
        }
        let state = TenantState::open(root.path(), "acme").unwrap();
        assert_eq!(state.first_flagged.get("t1"), Some(&instant));
        assert_eq!(state.problem, None);
    }

    #[test]
    fn unreadable_state_is_moved_aside() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("acme")).unwrap();
        fs::write(root.path().join("acme/state.json"), b"{not json").unwrap();
        let state = TenantState::open(root.path(), "acme").unwrap();
        assert!(state.first_flagged.is_empty());
        assert!(state.problem.as_deref().unwrap().contains("unreadable"));
        assert!(!root.path().join("acme/state.json").exists());
        let kept = fs::read_dir(root.path().join("acme"))
            .unwrap()
            .filter_map(Result::ok)
            .any(|entry| entry.file_name().to_string_lossy().contains("unreadable"));
        assert!(kept);
    }

    #[test]
    fn second_open_of_same_tenant_is_busy() {
        let root = tempfile::tempdir().unwrap();
        let _first = TenantState::open(root.path(), "acme").unwrap();
        let second = TenantState::open(root.path(), "acme");
        assert!(matches!(second, Err(StateError::Busy { .. })));
    }
}
