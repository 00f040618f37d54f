//! The append-only audit log of a tenant: one hash-chained JSON record per line.
//!
//! Records go to `<tenant dir>/audit.jsonl`. A record that would push that file past
//! [`Rotation::max_bytes`], or that falls on another UTC day than the record before it
//! (with [`Rotation::daily`]), starts a new file. The old one is synced and renamed to
//! `audit-NNNNNN.jsonl`, numbered from 000001 upwards. Rotated files are never deleted
//! or changed by patrol. The chain ([`super::chain`]) runs on across them.
//!
//! Every delete is recorded twice: a `delete_intent` that the caller asks to sync to disk
//! before the request is sent, and a `delete_result` after it. Token records carry the
//! token's full metadata and the names of the matching rules, so that a deleted token's
//! owner can recreate it with the same name and scopes. Owners appear by id and name only.
//! Records never contain a secret: tokens as listed carry none, and the client secret never
//! reaches this module.
//!
//! Only the process holding the tenant's lock appends. Readers ([`read_log`],
//! [`open_intents`]) take no lock; a line without its newline at the end of the newest file
//! is a record still being written (or cut short by a crash) and is skipped. When the
//! writer opens a log whose last line lacks its newline, it moves those bytes to
//! `audit.jsonl.torn-<instant>` first: the record was never synced, so no request was sent
//! on its strength.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::chain::{GENESIS, seal_in_place, sha256_hex, unseal};
use super::token_event::TokenEvent;
use super::{StateError, sync_dir};
use crate::isc::Token;
use crate::report::{serialize_instant, serialize_optional_instant};

/// The file records are appended to.
pub const LOG_FILE: &str = "audit.jsonl";

const ROTATED_PREFIX: &str = "audit-";
const ROTATED_SUFFIX: &str = ".jsonl";

/// The kind of event, serialized in snake case as the record's `event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A run began. Carries `dry_run` and `as_of`.
    RunStarted,
    /// A run ended. Carries `counts` and `open_intents`.
    RunFinished,
    /// A run could not list the tenant. Carries `error`.
    RunFailed,
    /// A token was flagged for deletion for the first time. Carries `first_flagged` and
    /// `grace_until`.
    TokenFlagged,
    /// A token flagged for deletion no longer is. `outcome` is its outcome in this run.
    FlagCleared,
    /// An exemption started to keep a token, or changed. Carries `exemption`.
    ExemptionApplied,
    /// The exemption of a flagged token passed its `until`. Carries `exemption`.
    ExemptionExpired,
    /// A breaker stopped every delete of the run. Carries `breaker` and `message`.
    BreakerTripped,
    /// A delete is about to be requested. Synced to disk before the request.
    DeleteIntent,
    /// The response to a delete, or its reconciliation after a crash. Carries `result`.
    DeleteResult,
    /// An event written by a newer patrol.
    #[serde(other)]
    Unknown,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RunStarted => "run_started",
            EventKind::RunFinished => "run_finished",
            EventKind::RunFailed => "run_failed",
            EventKind::TokenFlagged => "token_flagged",
            EventKind::FlagCleared => "flag_cleared",
            EventKind::ExemptionApplied => "exemption_applied",
            EventKind::ExemptionExpired => "exemption_expired",
            EventKind::BreakerTripped => "breaker_tripped",
            EventKind::DeleteIntent => "delete_intent",
            EventKind::DeleteResult => "delete_result",
            EventKind::Unknown => "unknown",
        }
    }
}

/// The final state of a delete, as recorded in a `delete_result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteStatus {
    /// The API confirmed the delete, or the token was no longer listed when an interrupted
    /// delete was reconciled.
    Deleted,
    /// The API returned 404: the token was already deleted.
    Gone,
    /// The request failed; `error` holds the cause.
    Failed,
    /// An interrupted delete whose token is still listed: it was not deleted and stays a
    /// candidate.
    NotDeleted,
}

impl DeleteStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteStatus::Deleted => "deleted",
            DeleteStatus::Gone => "gone",
            DeleteStatus::Failed => "failed",
            DeleteStatus::NotDeleted => "not_deleted",
        }
    }
}

/// The owner of a token as recorded: id and name, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    pub id: Option<String>,
    pub name: Option<String>,
}

/// A token's metadata as recorded, in the API's field names, with explicit nulls. These are
/// the fields a create request needs, plus what identifies and dates the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub owner: OwnerRecord,
    pub scope: Option<Vec<String>>,
    #[serde(serialize_with = "serialize_instant")]
    pub created: DateTime<Utc>,
    #[serde(serialize_with = "serialize_optional_instant")]
    pub last_used: Option<DateTime<Utc>>,
    #[serde(serialize_with = "serialize_optional_instant")]
    pub expiration_date: Option<DateTime<Utc>>,
    /// As listed: null when the API left it out (the API's default is 43200).
    pub access_token_validity_seconds: Option<u32>,
    #[serde(default)]
    pub user_aware_token_never_expires: Option<bool>,
    pub managed: bool,
}

impl From<&Token> for TokenRecord {
    fn from(token: &Token) -> Self {
        Self {
            id: token.id.clone(),
            name: token.name.clone(),
            owner: OwnerRecord {
                id: token.owner.id.clone(),
                name: token.owner.name.clone(),
            },
            scope: token.scope.clone(),
            created: token.created,
            last_used: token.last_used,
            expiration_date: token.expiration_date,
            access_token_validity_seconds: token.access_token_validity_seconds,
            user_aware_token_never_expires: token.user_aware_token_never_expires,
            managed: token.managed,
        }
    }
}

/// The counts of a finished run, shaped like the `summary` of the JSON report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    /// Tokens in the unfiltered listing.
    pub listed: usize,
    pub by_verdict: BTreeMap<String, usize>,
    /// Tokens by outcome; outcomes no token had are left out.
    pub by_outcome: BTreeMap<String, usize>,
    /// Intents of earlier runs that this run reconciled.
    #[serde(default)]
    pub recovered: usize,
}

/// The exemption named by an `exemption_applied` or `exemption_expired` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExemptionRecord {
    /// The exemption's selectors, like `token_id = …`.
    pub selector: String,
    pub reason: String,
    #[serde(serialize_with = "serialize_optional_instant")]
    pub until: Option<DateTime<Utc>>,
}

/// One audit log record. Members that do not apply to the event are left out; `prev` is
/// set by [`AuditLog::append`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub event: EventKind,
    pub run_id: String,
    pub tenant: String,
    /// When the record was written (the wall clock, also in forecasts of other instants).
    #[serde(serialize_with = "serialize_instant")]
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenRecord>,
    /// Names of the rules that match the token, for every token event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// The instant the policy was evaluated at.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_optional_instant"
    )]
    pub as_of: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<RunCounts>,
    /// Delete intents without a result when the run ended, this run's and earlier ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_intents: Option<usize>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_optional_instant"
    )]
    pub first_flagged: Option<DateTime<Utc>>,
    /// When the grace period of a flagged token ends: it may be deleted from then on.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_optional_instant"
    )]
    pub grace_until: Option<DateTime<Utc>>,
    /// The token's outcome in this run, for `flag_cleared`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemption: Option<ExemptionRecord>,
    /// The kind of breaker that tripped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<DeleteStatus>,
    /// For a reconciled `delete_result`: the run whose intent it closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent_run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The cause of a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Hash of the record before this one, or all zeros for the first.
    #[serde(default)]
    pub prev: String,
}

impl Record {
    /// Creates a record of `event` written now, with no optional member set.
    pub fn new(event: EventKind, run_id: &str, tenant: &str) -> Self {
        Self {
            event,
            run_id: run_id.to_owned(),
            tenant: tenant.to_owned(),
            at: Utc::now(),
            token: None,
            rules: None,
            dry_run: None,
            as_of: None,
            counts: None,
            open_intents: None,
            first_flagged: None,
            grace_until: None,
            outcome: None,
            exemption: None,
            breaker: None,
            result: None,
            intent_run_id: None,
            message: None,
            error: None,
            prev: String::new(),
        }
    }

    /// Creates a record of `event` about `token`, which `rules` match.
    pub fn for_token(
        event: EventKind,
        run_id: &str,
        tenant: &str,
        token: impl Into<TokenRecord>,
        rules: Vec<String>,
    ) -> Self {
        Self {
            token: Some(token.into()),
            rules: Some(rules),
            ..Self::new(event, run_id, tenant)
        }
    }

    /// Returns the `(run id, token id)` of the intent that a `delete_result` closes.
    fn closes(&self) -> Option<(&str, &str)> {
        let token = self.token.as_ref()?;
        let run_id = self.intent_run_id.as_deref().unwrap_or(&self.run_id);
        Some((run_id, token.id.as_str()))
    }
}

/// When the log file is rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate before a record would make the file larger than this. A record larger than
    /// the limit on its own still goes into a file of its own.
    pub max_bytes: u64,
    /// Rotate before the first record of a new UTC day.
    pub daily: bool,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024 * 1024,
            daily: true,
        }
    }
}

impl Rotation {
    /// Returns the rotation of a tenant's log: daily, and at `max_bytes`.
    pub fn with_max_bytes(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            ..Self::default()
        }
    }
}

/// The end of the chain: what the next record links to.
#[derive(Debug, Clone)]
struct Head {
    hash: String,
    day: Option<NaiveDate>,
}

/// Appends records to the audit log of one tenant.
///
/// Records appended without sync are gathered in memory and written in batches: at
/// [`PENDING_LIMIT`] bytes, before a synced record, before a rotation, on [`flush`] and on
/// drop. A first run over a large tenant flags tens of thousands of tokens, and one write
/// call per record was a tenth of its CPU time.
///
/// [`flush`]: AuditLog::flush
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// Length of the file: the records written to it.
    size: u64,
    /// Sealed lines appended and not written yet, in order.
    pending: Vec<u8>,
    /// The end of the chain, pending records included.
    head: Head,
    rotation: Rotation,
    /// Room for the next record's line, kept between appends.
    scratch: Vec<u8>,
}

/// Bytes of pending records that make an append write them out.
const PENDING_LIMIT: usize = 256 * 1024;

impl AuditLog {
    /// Opens the log in `tenant_dir` for appending, creating it if needed, and finds the
    /// hash of its last record. The caller holds the tenant's lock.
    pub fn open(tenant_dir: &Path, rotation: Rotation) -> Result<AuditLog, StateError> {
        let path = tenant_dir.join(LOG_FILE);
        let write_error = |source| StateError::Write {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(write_error)?;
        // The file may have just been created; its directory entry must be durable before a
        // synced intent in it counts.
        sync_dir(tenant_dir).map_err(|source| StateError::Write {
            path: tenant_dir.to_owned(),
            source,
        })?;
        let mut size = file.metadata().map_err(write_error)?.len();
        if size > 0 {
            size = cut_torn_tail(&path, &mut file, size)?;
        }

        let last = if size > 0 {
            Some(last_line(&mut file, size).map_err(write_error)?)
        } else {
            match rotated_files(tenant_dir)?.last() {
                Some((_, rotated)) => {
                    let read_error = |source| StateError::Read {
                        path: rotated.clone(),
                        source,
                    };
                    let mut previous = File::open(rotated).map_err(read_error)?;
                    let length = previous.metadata().map_err(read_error)?.len();
                    (length > 0)
                        .then(|| last_line(&mut previous, length))
                        .transpose()
                        .map_err(read_error)?
                }
                None => None,
            }
        };
        let head = match last {
            Some(line) => head_of(&line, &path),
            None => Head {
                hash: GENESIS.to_owned(),
                day: None,
            },
        };

        Ok(AuditLog {
            dir: tenant_dir.to_owned(),
            path,
            file,
            size,
            pending: Vec::new(),
            scratch: Vec::new(),
            head,
            rotation,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Links `record` to the one before and appends it. With `sync` it returns only once the
    /// record and every one before it are on disk, because a delete intent must be durable
    /// before its request is sent. Without `sync`, the record may wait in memory until a
    /// later write.
    ///
    /// An error means that this record is not in the log. The records appended before it
    /// stay pending, and the next successful write adds them. A failed write is cut
    /// back from the file, so no partial line stays.
    pub fn append(&mut self, mut record: Record, sync: bool) -> Result<(), StateError> {
        let at = record.at;
        self.append_with(at, sync, |line, prev| {
            record.prev = prev.to_owned();
            serde_json::to_writer(line, &record)
        })
    }

    /// Appends a token event without syncing, as [`AuditLog::append`] appends the
    /// [`Record`] with the same content.
    pub fn append_token_event(&mut self, event: TokenEvent<'_>) -> Result<(), StateError> {
        let at = event.at;
        self.append_with(at, false, move |line, prev| {
            // The buffer is empty, so it is valid UTF-8 and becomes a String without a copy.
            let mut text = String::from_utf8(std::mem::take(line)).unwrap_or_default();
            event.push_json(prev, &mut text);
            *line = text.into_bytes();
            Ok(())
        })
    }

    /// Appends the record that `serialize` writes, given the hash of the record before it,
    /// for the instant `at`.
    fn append_with(
        &mut self,
        at: DateTime<Utc>,
        sync: bool,
        serialize: impl FnOnce(&mut Vec<u8>, &str) -> serde_json::Result<()>,
    ) -> Result<(), StateError> {
        // One buffer serves every record: a large run appends tens of thousands.
        let mut line = std::mem::take(&mut self.scratch);
        line.clear();
        serialize(&mut line, &self.head.hash).expect("audit records serialize");
        let hash = seal_in_place(&mut line);

        let day = at.date_naive();
        let new_day = self.rotation.daily && self.head.day.is_some_and(|last| last != day);
        let length = self.size + self.pending.len() as u64;
        let too_large = length + line.len() as u64 + 1 > self.rotation.max_bytes;
        if length > 0 && (new_day || too_large) {
            self.write_pending(false)?;
            self.rotate()?;
        }

        let mark = self.pending.len();
        let previous = std::mem::replace(
            &mut self.head,
            Head {
                hash,
                day: Some(day),
            },
        );
        self.pending.extend_from_slice(&line);
        self.pending.push(b'\n');
        self.scratch = line;
        if (sync || self.pending.len() >= PENDING_LIMIT)
            && let Err(error) = self.write_pending(sync)
        {
            self.pending.truncate(mark);
            self.head = previous;
            return Err(error);
        }
        Ok(())
    }

    /// Returns the hash of the last record appended, which the next record links to.
    pub fn last_hash(&self) -> &str {
        &self.head.hash
    }

    /// Writes the records appended without sync to the file, without syncing it.
    pub fn flush(&mut self) -> Result<(), StateError> {
        self.write_pending(false)
    }

    /// Writes the pending records and, with `sync`, syncs the file. On failure the file is
    /// cut back to its length before and the records stay pending.
    fn write_pending(&mut self, sync: bool) -> Result<(), StateError> {
        if self.pending.is_empty() && !sync {
            return Ok(());
        }
        let written = self
            .file
            .write_all(&self.pending)
            .and_then(|()| if sync { self.file.sync_data() } else { Ok(()) });
        if let Err(source) = written {
            if let Err(cut) = self.file.set_len(self.size) {
                tracing::error!(path = %self.path.display(), error = %cut, "cannot remove a partly written audit record");
            }
            return Err(StateError::Write {
                path: self.path.clone(),
                source,
            });
        }
        self.size += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Syncs the current file, renames it to the next rotated name and starts a new one.
    fn rotate(&mut self) -> Result<(), StateError> {
        let error = |path: &Path| {
            let path = path.to_owned();
            move |source| StateError::Write { path, source }
        };
        self.file.sync_all().map_err(error(&self.path))?;
        let number = rotated_files(&self.dir)?
            .last()
            .map_or(1, |(number, _)| number + 1);
        let rotated = self.dir.join(rotated_name(number));
        fs::rename(&self.path, &rotated).map_err(error(&rotated))?;
        self.file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(error(&self.path))?;
        sync_dir(&self.dir).map_err(error(&self.dir))?;
        self.size = 0;
        tracing::info!(path = %rotated.display(), "rotated the audit log");
        Ok(())
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        if let Err(error) = self.flush() {
            tracing::error!(%error, records = self.pending.iter().filter(|byte| **byte == b'\n').count(), "cannot write the last audit records");
        }
    }
}

fn rotated_name(number: u64) -> String {
    format!("{ROTATED_PREFIX}{number:06}{ROTATED_SUFFIX}")
}

/// Lists the rotated files in `dir` with their numbers, oldest first.
fn rotated_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StateError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StateError::Read {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let number = name
            .strip_prefix(ROTATED_PREFIX)
            .and_then(|rest| rest.strip_suffix(ROTATED_SUFFIX))
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u64>().ok());
        if let Some(number) = number {
            files.push((number, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Lists the log files of a tenant, oldest first: the rotated ones by number, then
/// `audit.jsonl` if it exists.
pub fn log_files(tenant_dir: &Path) -> Result<Vec<PathBuf>, StateError> {
    let mut files: Vec<PathBuf> = rotated_files(tenant_dir)?
        .into_iter()
        .map(|(_, path)| path)
        .collect();
    let active = tenant_dir.join(LOG_FILE);
    if active.exists() {
        files.push(active);
    }
    Ok(files)
}

/// Moves bytes after the last newline (a record cut short by a crash) to a side file and
/// cuts them off. Returns the new length.
fn cut_torn_tail(path: &Path, file: &mut File, size: u64) -> Result<u64, StateError> {
    let error = |source| StateError::Write {
        path: path.to_owned(),
        source,
    };
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(size - 1)).map_err(error)?;
    file.read_exact(&mut last).map_err(error)?;
    if last[0] == b'\n' {
        return Ok(size);
    }

    let keep = match find_last_newline(file, size).map_err(error)? {
        Some(position) => position + 1,
        None => 0,
    };
    let mut torn = Vec::new();
    file.seek(SeekFrom::Start(keep)).map_err(error)?;
    file.read_to_end(&mut torn).map_err(error)?;
    let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let aside = path.with_file_name(format!("{LOG_FILE}.torn-{stamp}"));
    super::write_atomically(&aside, &torn)?;
    file.set_len(keep).map_err(error)?;
    file.sync_all().map_err(error)?;
    tracing::warn!(
        path = %path.display(),
        bytes = torn.len(),
        moved_to = %aside.display(),
        "the audit log ended in an incomplete record, left by a crash; it was never synced, so no delete was sent on its strength"
    );
    Ok(keep)
}

/// Position of the last newline before `end`, read backwards in blocks.
fn find_last_newline(file: &mut File, end: u64) -> std::io::Result<Option<u64>> {
    const BLOCK: u64 = 8192;
    let mut block_end = end;
    let mut buffer = vec![0u8; BLOCK as usize];
    while block_end > 0 {
        let start = block_end.saturating_sub(BLOCK);
        let length = (block_end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buffer[..length])?;
        if let Some(offset) = buffer[..length].iter().rposition(|byte| *byte == b'\n') {
            return Ok(Some(start + offset as u64));
        }
        block_end = start;
    }
    Ok(None)
}

/// Reads the last line of a file of `size` bytes that ends with a newline, without the
/// newline.
fn last_line(file: &mut File, size: u64) -> std::io::Result<Vec<u8>> {
    let start = match find_last_newline(file, size - 1)? {
        Some(position) => position + 1,
        None => 0,
    };
    let mut line = vec![0u8; (size - 1 - start) as usize];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut line)?;
    Ok(line)
}

/// Finds the head that a new record links to, given the last line on disk. A damaged line
/// is still linked to, by the hash of its bytes, so the chain goes on and `verify-log`
/// reports the damage.
fn head_of(line: &[u8], path: &Path) -> Head {
    #[derive(Deserialize)]
    struct At {
        at: DateTime<Utc>,
    }
    match unseal(line) {
        Some((body, hash)) => Head {
            hash: hash.to_owned(),
            day: serde_json::from_slice::<At>(&body)
                .ok()
                .map(|record| record.at.date_naive()),
        },
        None => {
            tracing::error!(path = %path.display(), "the last audit record has no hash; new records link to its bytes; run `patrol verify-log` to see the damage");
            Head {
                hash: sha256_hex(line),
                day: None,
            }
        }
    }
}

/// One line of the log as read back.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub path: PathBuf,
    /// 1-based line number in `path`.
    pub line: usize,
    /// The record, or why the line is not one.
    pub record: Result<Record, String>,
}

/// Reads every complete line of one log file.
fn read_file(path: &Path) -> Result<Vec<LogEntry>, StateError> {
    let error = |source| StateError::Read {
        path: path.to_owned(),
        source,
    };
    let mut reader = BufReader::new(File::open(path).map_err(error)?);
    let mut entries = Vec::new();
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(error)? == 0 {
            break;
        }
        number += 1;
        if line.pop() != Some(b'\n') {
            break;
        }
        entries.push(LogEntry {
            path: path.to_owned(),
            line: number,
            record: parse_line(&line),
        });
    }
    Ok(entries)
}

/// Splits the bytes of a log file into its complete lines, without their newlines. A last
/// line with no newline was cut off while it was written, and is left out as
/// [`read_file`] leaves it out.
fn complete_lines(bytes: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    let end = bytes.iter().rposition(|&byte| byte == b'\n');
    end.map(|end| bytes[..end].split(|&byte| byte == b'\n'))
        .into_iter()
        .flatten()
}

fn parse_line(line: &[u8]) -> Result<Record, String> {
    let (body, _) = unseal(line).ok_or_else(|| "the line has no hash member".to_owned())?;
    serde_json::from_slice(&body).map_err(|error| error.to_string())
}

/// Reads the whole log of a tenant, oldest record first. Damaged lines are returned as
/// such, and `verify-log` checks whether the chain is intact.
pub fn read_log(tenant_dir: &Path) -> Result<Vec<LogEntry>, StateError> {
    let mut entries = Vec::new();
    for path in log_files(tenant_dir)? {
        entries.extend(read_file(&path)?);
    }
    Ok(entries)
}

/// Returns the delete intents that have no result, oldest first.
///
/// The log is read backwards from its end, file by file, and the scan stops at the last
/// `run_finished` with `open_intents` 0, because every intent before it has its result. A
/// run that ends with intents still open counts them in its `run_finished`, so the scan goes
/// on past it.
pub fn open_intents(tenant_dir: &Path) -> Result<Vec<Record>, StateError> {
    let mut closed: HashSet<(String, String)> = HashSet::new();
    let mut open = Vec::new();
    'files: for path in log_files(tenant_dir)?.iter().rev() {
        let bytes = std::fs::read(path).map_err(|source| StateError::Read {
            path: path.clone(),
            source,
        })?;
        // Lines are parsed from the end only as far as the scan goes: after a run that
        // closed all its intents, that is one line however long the file is.
        for line in complete_lines(&bytes).rev() {
            let Ok(record) = parse_line(line) else {
                continue;
            };
            match record.event {
                EventKind::RunFinished if record.open_intents == Some(0) => break 'files,
                EventKind::DeleteResult => {
                    if let Some((run_id, token_id)) = record.closes() {
                        closed.insert((run_id.to_owned(), token_id.to_owned()));
                    }
                }
                EventKind::DeleteIntent => {
                    if let Some(token) = &record.token
                        && !closed.contains(&(record.run_id.clone(), token.id.clone()))
                    {
                        open.push(record);
                    }
                }
                _ => {}
            }
        }
    }
    open.reverse();
    Ok(open)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::chain::verify;

    fn token(id: &str) -> TokenRecord {
        TokenRecord {
            id: id.to_owned(),
            name: format!("name-{id}"),
            owner: OwnerRecord {
                id: Some("owner-1".into()),
                name: Some("Owner One".into()),
            },
            scope: Some(vec!["sp:scopes:all".into()]),
            created: "2026-01-01T00:00:00Z".parse().unwrap(),
            last_used: None,
            expiration_date: None,
            access_token_validity_seconds: Some(900),
            user_aware_token_never_expires: None,
            managed: false,
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn record(event: EventKind, run_id: &str, instant: &str) -> Record {
        Record {
            at: at(instant),
            ..Record::new(event, run_id, "acme")
        }
    }

    fn intent(run_id: &str, id: &str) -> Record {
        Record {
            at: at("2026-12-01T03:00:00Z"),
            ..Record::for_token(EventKind::DeleteIntent, run_id, "acme", token(id), vec![])
        }
    }

    fn result(run_id: &str, id: &str) -> Record {
        Record {
            at: at("2026-12-01T03:00:01Z"),
            result: Some(DeleteStatus::Deleted),
            ..Record::for_token(EventKind::DeleteResult, run_id, "acme", token(id), vec![])
        }
    }

    fn finished(run_id: &str, open: usize) -> Record {
        Record {
            open_intents: Some(open),
            ..record(EventKind::RunFinished, run_id, "2026-12-01T03:00:02Z")
        }
    }

    #[test]
    fn records_link_to_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(dir.path(), Rotation::default()).unwrap();
        for event in [EventKind::RunStarted, EventKind::RunFinished] {
            log.append(record(event, "r1", "2026-12-01T03:00:00Z"), false)
                .unwrap();
        }
        log.flush().unwrap();
        let entries = read_log(dir.path()).unwrap();
        let first = entries[0].record.as_ref().unwrap();
        let second = entries[1].record.as_ref().unwrap();
        assert_eq!(first.prev, GENESIS);
        let text = fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
        let first_line = text.lines().next().unwrap();
        let (_, first_hash) = unseal(first_line.as_bytes()).unwrap();
        assert_eq!(second.prev, first_hash);
    }

    #[test]
    fn unsynced_records_wait_for_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE);
        let lines = || fs::read_to_string(&path).unwrap().lines().count();
        let mut log = AuditLog::open(dir.path(), Rotation::default()).unwrap();
        log.append(
            record(EventKind::RunStarted, "r1", "2026-12-01T03:00:00Z"),
            false,
        )
        .unwrap();
        assert_eq!(lines(), 0);
        log.append(intent("r1", "t1"), true).unwrap();
        assert_eq!(lines(), 2);
        log.append(result("r1", "t1"), false).unwrap();
        assert_eq!(lines(), 2);
        log.flush().unwrap();
        assert_eq!(lines(), 3);
        log.append(finished("r1", 0), false).unwrap();
        drop(log);
        assert_eq!(lines(), 4);
        assert_eq!(verify(dir.path()).unwrap().broken, None);
    }

    #[test]
    fn many_unsynced_records_are_written_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE);
        let mut log = AuditLog::open(dir.path(), Rotation::default()).unwrap();
        let mut appended = 0;
        while fs::metadata(&path).unwrap().len() == 0 {
            log.append(intent("r1", &format!("t{appended}")), false)
                .unwrap();
            appended += 1;
            assert!(appended < 100_000, "nothing was written");
        }
        assert!(log.pending.is_empty());
        assert!(fs::metadata(&path).unwrap().len() >= PENDING_LIMIT as u64);
    }

    #[test]
    fn chain_continues_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        for run in ["r1", "r2"] {
            let mut log = AuditLog::open(dir.path(), Rotation::default()).unwrap();
            log.append(
                record(EventKind::RunStarted, run, "2026-12-01T03:00:00Z"),
                true,
            )
            .unwrap();
        }
        let verification = verify(dir.path()).unwrap();
        assert_eq!(verification.records, 2);
        assert_eq!(verification.broken, None);
    }

    #[test]
    fn size_limit_rotates_and_keeps_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let rotation = Rotation {
            max_bytes: 600,
            daily: false,
        };
        let mut log = AuditLog::open(dir.path(), rotation).unwrap();
        for index in 0..10 {
            log.append(intent("r1", &format!("t{index}")), false)
                .unwrap();
        }
        drop(log);
        let files = log_files(dir.path()).unwrap();
        assert!(files.len() >= 3, "expected several files, got {files:?}");
        assert!(files[0].ends_with("audit-000001.jsonl"));
        assert!(files.last().unwrap().ends_with(LOG_FILE));
        for file in &files {
            let size = fs::metadata(file).unwrap().len();
            assert!(size <= 600, "{} has {size} bytes", file.display());
        }
        let verification = verify(dir.path()).unwrap();
        assert_eq!(verification.records, 10);
        assert_eq!(verification.broken, None);
    }

    #[test]
    fn new_utc_day_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(dir.path(), Rotation::default()).unwrap();
        log.append(
            record(EventKind::RunStarted, "r1", "2026-12-01T23:59:59Z"),
            false,
        )
        .unwrap();
        log.append(
            record(EventKind::RunFinished, "r1", "2026-12-01T23:59:59Z"),
            false,
        )
        .unwrap();
        drop(log);
        let mut log = AuditLog::open(dir.path(), Rotation::default()).unwrap();
        log.append(
            record(EventKind::RunStarted, "r2", "2026-12-02T00:00:00Z"),
            false,
        )
        .unwrap();
        log.flush().unwrap();

        let files = log_files(dir.path()).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(fs::read_to_string(&files[0]).unwrap().lines().count(), 2);
        assert_eq!(fs::read_to_string(&files[1]).unwrap().lines().count(), 1);
        assert_eq!(verify(dir.path()).unwrap().broken, None);
    }

    #[test]
    fn torn_tail_is_moved_aside_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(dir.path(), Rotation::default()).unwrap();
        log.append(
            record(EventKind::RunStarted, "r1", "2026-12-01T03:00:00Z"),
            true,
        )
        .unwrap();
        drop(log);
        let path = dir.path().join(LOG_FILE);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"event":"delete_int"#).unwrap();
        drop(file);

        let mut log = AuditLog::open(dir.path(), Rotation::default()).unwrap();
        log.append(
            record(EventKind::RunFinished, "r1", "2026-12-01T03:00:01Z"),
            true,
        )
        .unwrap();
        let verification = verify(dir.path()).unwrap();
        assert_eq!(verification.broken, None);
        assert_eq!(verification.records, 2);
        let aside: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().contains(".torn-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(
            fs::read(aside[0].path()).unwrap(),
            br#"{"event":"delete_int"#
        );
    }

    #[test]
    fn open_intents_are_those_without_result() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(dir.path(), Rotation::default()).unwrap();
        log.append(intent("r1", "a"), true).unwrap();
        log.append(result("r1", "a"), true).unwrap();
        log.append(intent("r1", "b"), true).unwrap();
        log.append(intent("r1", "c"), true).unwrap();
        log.append(result("r1", "c"), true).unwrap();

        let open = open_intents(dir.path()).unwrap();
        let ids: Vec<&str> = open
            .iter()
            .map(|record| record.token.as_ref().unwrap().id.as_str())
            .collect();
        assert_eq!(ids, ["b"]);
    }

    #[test]
    fn reconciled_result_closes_intent_of_earlier_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(dir.path(), Rotation::default()).unwrap();
        log.append(intent("r1", "a"), true).unwrap();
        log.append(
            Record {
                intent_run_id: Some("r1".into()),
                result: Some(DeleteStatus::NotDeleted),
                ..Record::for_token(EventKind::DeleteResult, "r2", "acme", token("a"), vec![])
            },
            true,
        )
        .unwrap();
        assert!(open_intents(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn scan_stops_at_run_finished_without_open_intents() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(dir.path(), Rotation::default()).unwrap();
        // An intent before a clean end is not reported: the checkpoint vouches for it.
        log.append(intent("r0", "old"), true).unwrap();
        log.append(finished("r0", 0), false).unwrap();
        // A run that ends with an open intent does not stop the scan.
        log.append(intent("r1", "a"), true).unwrap();
        log.append(finished("r1", 1), false).unwrap();
        log.append(intent("r2", "b"), true).unwrap();

        let open = open_intents(dir.path()).unwrap();
        let ids: Vec<(&str, &str)> = open
            .iter()
            .map(|record| {
                (
                    record.run_id.as_str(),
                    record.token.as_ref().unwrap().id.as_str(),
                )
            })
            .collect();
        assert_eq!(ids, [("r1", "a"), ("r2", "b")]);
    }

    #[test]
    fn complete_lines_leave_out_torn_tail() {
        fn lines(bytes: &[u8]) -> Vec<&[u8]> {
            complete_lines(bytes).rev().collect()
        }
        assert_eq!(lines(b"a\nb\nc"), [b"b".as_slice(), b"a"]);
        assert_eq!(lines(b"a\n\nb\n"), [b"b".as_slice(), b"", b"a"]);
        assert_eq!(lines(b"torn"), Vec::<&[u8]>::new());
        assert_eq!(lines(b""), Vec::<&[u8]>::new());
    }

    #[test]
    fn open_intent_before_torn_line_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(dir.path(), Rotation::default()).unwrap();
        log.append(intent("r1", "a"), true).unwrap();
        drop(log);
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG_FILE))
            .unwrap();
        file.write_all(b"{\"event\":\"run_fini").unwrap();
        assert_eq!(open_intents(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn open_intents_span_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let rotation = Rotation {
            max_bytes: 700,
            daily: false,
        };
        let mut log = AuditLog::open(dir.path(), rotation).unwrap();
        for index in 0..6 {
            log.append(intent("r1", &format!("t{index}")), true)
                .unwrap();
        }
        log.append(result("r1", "t5"), true).unwrap();
        assert!(log_files(dir.path()).unwrap().len() > 2);
        assert_eq!(open_intents(dir.path()).unwrap().len(), 5);
    }

    #[test]
    fn token_record_keeps_owner_id_and_name_only() {
        let token: Token = serde_json::from_str(
            r#"{"id":"t1","name":"ci","scope":["sp:scopes:all"],
                "owner":{"type":"IDENTITY","id":"o1","name":"Ada"},
                "created":"2026-01-01T00:00:00Z","lastUsed":null,"managed":false,
                "accessTokenValiditySeconds":900,"expirationDate":"2027-01-01T00:00:00Z",
                "userAwareTokenNeverExpires":false}"#,
        )
        .unwrap();
        let json = serde_json::to_value(TokenRecord::from(&token)).unwrap();
        assert_eq!(
            json["owner"],
            serde_json::json!({"id": "o1", "name": "Ada"})
        );
        assert_eq!(json["lastUsed"], serde_json::Value::Null);
        assert_eq!(json["accessTokenValiditySeconds"], 900);
        assert_eq!(json["expirationDate"], "2027-01-01T00:00:00Z");
        assert_eq!(json["scope"], serde_json::json!(["sp:scopes:all"]));
    }
}
