//! Persisted state of each tenant: first-flagged times, the audit log and run reports.
//!
//! Layout under the state directory, per tenant:
//!
//! - `<tenant>/state.json`: when each token was first flagged for deletion, and the
//!   exemption last seen keeping each flagged token;
//! - `<tenant>/audit.jsonl` and the rotated `<tenant>/audit-NNNNNN.jsonl`: the hash-chained
//!   audit log, one JSON record per event ([`log`], [`chain`]);
//! - `<tenant>/reports/`: the JSON report of recent runs and `last.json`
//!   ([`reports`]);
//! - `<tenant>/lock`: held with an exclusive file lock for the whole run, so two patrol
//!   processes never audit the same tenant from the same state at once. Readers of the log
//!   and the reports do not take it.
//!
//! Writes of `state.json` are atomic: a temporary file in the same directory is written,
//! flushed to disk, and renamed over the old one, then the directory is synced. A missing
//! file starts empty. An unreadable one is moved aside and reported, and the caller must then
//! delete nothing in that run, since every grace period starts anew.

pub mod chain;
pub mod log;
pub mod reports;
mod token_event;

pub use chain::{BrokenRecord, ChainProblem, Verification, verify};
pub use log::{
    AuditLog, DeleteStatus, EventKind, ExemptionRecord, LogEntry, OwnerRecord, Record, Rotation,
    RunCounts, TokenRecord, open_intents, read_log,
};
pub use token_event::{TokenEvent, TokenView};

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::isc::ReadInstant;
use crate::report::Instant;

const STATE_FILE: &str = "state.json";
const FORMAT_VERSION: u32 = 1;

/// Bytes reserved per entry of the state file when it is serialized. A first-flagged time
/// takes about 60: `    "<32-character id>": "YYYY-MM-DDTHH:MM:SSZ",` and a newline.
const STATE_ENTRY_BYTES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create directory {path}: {source}; check [state] dir and its permissions")]
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
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Default, Deserialize)]
struct StateFile {
    version: u32,
    #[serde(default, deserialize_with = "read_first_flagged")]
    first_flagged: BTreeMap<String, DateTime<Utc>>,
    #[serde(default)]
    exemptions: BTreeMap<String, SeenExemption>,
}

/// The state file as written: the same members as [`StateFile`], borrowed.
#[derive(Serialize)]
struct StateFileView<'a> {
    version: u32,
    #[serde(serialize_with = "write_first_flagged")]
    first_flagged: &'a BTreeMap<String, DateTime<Utc>>,
    exemptions: &'a BTreeMap<String, SeenExemption>,
}

/// Writes the first-flagged times with the report's instant formatter, which writes what
/// chrono's `Serialize` writes. A large tenant has tens of thousands of them.
fn write_first_flagged<S: serde::Serializer>(
    map: &&BTreeMap<String, DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(map.iter().map(|(id, first)| (id, Instant(*first))))
}

/// Reads the first-flagged times as chrono's `Deserialize` reads them, and builds the map
/// from the gathered entries in one pass instead of one insert each. As with inserts, the
/// last of repeated ids wins.
fn read_first_flagged<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, DateTime<Utc>>, D::Error> {
    struct Entries;

    impl<'de> serde::de::Visitor<'de> for Entries {
        type Value = BTreeMap<String, DateTime<Utc>>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a map of token ids to RFC 3339 timestamps")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some((id, ReadInstant(first))) = map.next_entry::<String, ReadInstant>()? {
                entries.push((id, first));
            }
            Ok(BTreeMap::from_iter(entries))
        }
    }

    deserializer.deserialize_map(Entries)
}

/// The exemption last seen deciding the outcome of a flagged token, kept so that the audit
/// log records when one starts to apply, changes or expires, and not every run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenExemption {
    pub selector: String,
    pub until: Option<DateTime<Utc>>,
    pub expired: bool,
}

/// The state of one tenant, locked for the lifetime of this value.
#[derive(Debug)]
pub struct TenantState {
    dir: PathBuf,
    /// The exclusive lock; `None` for a read-only view, which never saves.
    _lock: Option<File>,
    /// When each token currently flagged for deletion was first flagged.
    pub first_flagged: BTreeMap<String, DateTime<Utc>>,
    /// The exemption last seen keeping each flagged token, by token id.
    pub exemptions: BTreeMap<String, SeenExemption>,
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

        let (file, problem) = read_state(&dir, true);
        Ok(TenantState {
            dir,
            _lock: Some(lock),
            first_flagged: file.first_flagged,
            exemptions: file.exemptions,
            problem,
        })
    }

    /// Reads the state of `tenant` without creating, locking or moving anything, for
    /// forecasts. A missing or unreadable state reads as empty.
    pub fn read_only(root: &Path, tenant: &str) -> TenantState {
        let dir = root.join(tenant);
        let (file, problem) = read_state(&dir, false);
        TenantState {
            dir,
            _lock: None,
            first_flagged: file.first_flagged,
            exemptions: file.exemptions,
            problem,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the first-flagged times and seen exemptions atomically.
    ///
    /// # Panics
    ///
    /// On a read-only view, which must never write.
    pub fn save(&self) -> Result<(), StateError> {
        assert!(self._lock.is_some(), "a read-only state view was saved");
        let file = StateFileView {
            version: FORMAT_VERSION,
            first_flagged: &self.first_flagged,
            exemptions: &self.exemptions,
        };
        // An entry takes about 60 bytes, so the buffer is seldom copied as it grows.
        let entries = self.first_flagged.len() + self.exemptions.len();
        let mut bytes = Vec::with_capacity(STATE_ENTRY_BYTES * entries + 256);
        serde_json::to_writer_pretty(&mut bytes, &file).expect("state serializes");
        bytes.push(b'\n');
        write_atomically(&self.dir.join(STATE_FILE), &bytes)
    }
}

/// Reads the state file; with `repair`, an unreadable one is moved aside.
fn read_state(dir: &Path, repair: bool) -> (StateFile, Option<String>) {
    let path = dir.join(STATE_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return (StateFile::default(), None);
        }
        Err(error) => {
            let reason = error.to_string();
            let problem = if repair {
                move_aside(&path, &reason)
            } else {
                reason
            };
            return (StateFile::default(), Some(problem));
        }
    };
    match serde_json::from_slice::<StateFile>(&bytes) {
        Ok(file) if file.version == FORMAT_VERSION => (file, None),
        Ok(file) => {
            let reason = format!("unsupported state format version {}", file.version);
            let problem = if repair {
                move_aside(&path, &reason)
            } else {
                reason
            };
            (StateFile::default(), Some(problem))
        }
        Err(error) => {
            let reason = error.to_string();
            let problem = if repair {
                move_aside(&path, &reason)
            } else {
                reason
            };
            (StateFile::default(), Some(problem))
        }
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
    write_atomically_with(path, |out| out.write_all(bytes))
}

/// Writes what `write` produces to `path` through a buffered, synced temporary file and a
/// rename, so that a large file is never held in memory whole. A failure removes the
/// temporary file and leaves `path` as it was.
pub(crate) fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), StateError> {
    let error = |source| StateError::Write {
        path: path.to_owned(),
        source,
    };
    let temporary = path.with_extension("tmp");
    let written = File::create(&temporary).and_then(|file| {
        let mut out = std::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        write(&mut out)?;
        let file = out.into_inner().map_err(|error| error.into_error())?;
        file.sync_all()
    });
    if let Err(source) = written {
        // Best effort: a leftover temporary file is overwritten by the next write.
        let _ = fs::remove_file(&temporary);
        return Err(error(source));
    }
    fs::rename(&temporary, path).map_err(error)?;
    if let Some(parent) = path.parent() {
        sync_dir(parent).map_err(error)?;
    }
    Ok(())
}

/// Syncs a directory, so that a rename or a new file in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Buffer size of the files patrol writes whole.
const WRITE_BUFFER: usize = 256 * 1024;

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
    fn seen_exemptions_survive_reopening() {
        let root = tempfile::tempdir().unwrap();
        let seen = SeenExemption {
            selector: "token_id = t1".into(),
            until: Some(Utc::now()),
            expired: false,
        };
        {
            let mut state = TenantState::open(root.path(), "acme").unwrap();
            state.exemptions.insert("t1".into(), seen.clone());
            state.save().unwrap();
        }
        let state = TenantState::open(root.path(), "acme").unwrap();
        assert_eq!(state.exemptions.get("t1"), Some(&seen));
    }

    #[test]
    fn state_without_exemptions_still_loads() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("acme")).unwrap();
        fs::write(
            root.path().join("acme/state.json"),
            br#"{"version":1,"first_flagged":{"t1":"2026-12-01T00:00:00Z"}}"#,
        )
        .unwrap();
        let state = TenantState::open(root.path(), "acme").unwrap();
        assert_eq!(state.problem, None);
        assert_eq!(state.first_flagged.len(), 1);
        assert!(state.exemptions.is_empty());
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

    /// The state file as serde writes and reads the same members with chrono's impls.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct ThroughChrono {
        version: u32,
        first_flagged: BTreeMap<String, DateTime<Utc>>,
        exemptions: BTreeMap<String, SeenExemption>,
    }

    #[test]
    fn first_flagged_written_like_chrono() {
        let root = tempfile::tempdir().unwrap();
        let whole = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap();
        let fraction = DateTime::parse_from_rfc3339("2026-12-01T10:20:30.123456Z").unwrap();
        let mut state = TenantState::open(root.path(), "acme").unwrap();
        state.first_flagged.insert("t1".into(), whole.to_utc());
        state.first_flagged.insert("t2".into(), fraction.to_utc());
        state.exemptions.insert(
            "t2".into(),
            SeenExemption {
                selector: "token_id = t2".into(),
                until: Some(fraction.to_utc()),
                expired: true,
            },
        );
        state.save().unwrap();

        let expected = ThroughChrono {
            version: FORMAT_VERSION,
            first_flagged: state.first_flagged.clone(),
            exemptions: state.exemptions.clone(),
        };
        let mut bytes = serde_json::to_vec_pretty(&expected).unwrap();
        bytes.push(b'\n');
        assert_eq!(
            String::from_utf8(fs::read(root.path().join("acme/state.json")).unwrap()).unwrap(),
            String::from_utf8(bytes).unwrap()
        );
    }

    /// Writes `text` as the state file of tenant `acme` under `root`.
    fn write_state_file(root: &Path, text: &str) {
        fs::create_dir_all(root.join("acme")).unwrap();
        fs::write(root.join("acme/state.json"), text).unwrap();
    }

    #[test]
    fn first_flagged_read_like_chrono() {
        let root = tempfile::tempdir().unwrap();
        // Ids out of order, an offset, fractions of 1 and 9 digits, and a repeated id.
        let text = r#"{"version":1,"first_flagged":{
            "t3":"2026-12-01T00:00:00+02:00",
            "t1":"2026-12-01T00:00:00.5Z",
            "t2":"2026-12-01T00:00:00.123456789Z",
            "t1":"2026-12-02T00:00:00Z"}}"#;
        write_state_file(root.path(), text);
        let state = TenantState::open(root.path(), "acme").unwrap();
        assert_eq!(state.problem, None);
        let expected: ThroughChrono =
            serde_json::from_str(&text.replace("}}", "},\"exemptions\":{}}")).unwrap();
        assert_eq!(state.first_flagged, expected.first_flagged);
        assert_eq!(
            state.first_flagged["t1"],
            DateTime::parse_from_rfc3339("2026-12-02T00:00:00Z").unwrap()
        );
    }

    #[test]
    fn invalid_first_flagged_time_moves_state_aside() {
        let root = tempfile::tempdir().unwrap();
        write_state_file(
            root.path(),
            r#"{"version":1,"first_flagged":{"t1":"2026-13-01T00:00:00Z"}}"#,
        );
        let state = TenantState::open(root.path(), "acme").unwrap();
        assert!(state.first_flagged.is_empty());
        assert!(state.problem.as_deref().unwrap().contains("unreadable"));
    }

    #[test]
    fn second_open_of_same_tenant_is_busy() {
        let root = tempfile::tempdir().unwrap();
        let _first = TenantState::open(root.path(), "acme").unwrap();
        let second = TenantState::open(root.path(), "acme");
        assert!(matches!(second, Err(StateError::Busy { .. })));
    }
}
