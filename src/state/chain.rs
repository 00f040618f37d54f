//! The hash chain of the audit log: how a record is sealed, and how the chain is verified.
//!
//! A record's *body* is its compact JSON without the `hash` member, exactly as patrol
//! serialized it, and its hash is the SHA-256 of those bytes in lowercase hex. The line on
//! disk is the body with `,"hash":"<hex>"` inserted before the closing brace, so a reader
//! recovers the body by cutting that member off again, and hashes the bytes that were
//! written instead of a re-serialization. Every body contains `prev`, the hash of the record
//! before it, or [`GENESIS`] for the first record of the log. The chain runs on across
//! rotated files: the first record of a new file holds the hash of the last record of the
//! file before it.
//!
//! Verification finds records that were changed, removed, inserted or reordered. It cannot
//! find records cut off the end of the newest file, nor a log rewritten from some record on
//! with new hashes: the hashes are not keyed, so they show damage and careless edits, and
//! they prove nothing against someone who can rewrite the files.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use ring::digest::{SHA256, digest};
use serde::Deserialize;

use super::StateError;
use super::log::log_files;

/// The `prev` of the first record of a log.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Length of a SHA-256 hash in hex digits.
const HASH_HEX_LEN: usize = 64;

/// The bytes between the body and the hash: `,"hash":"`.
const HASH_MEMBER: &[u8] = b",\"hash\":\"";

/// Length of the `,"hash":"<hex>"}` suffix that ends every line.
const SUFFIX_LEN: usize = HASH_MEMBER.len() + HASH_HEX_LEN + 2;

/// SHA-256 of `bytes` in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let hash = digest(&SHA256, bytes);
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(HASH_HEX_LEN);
    for byte in hash.as_ref() {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// Seals a record body (compact JSON of an object with at least one member) into the line
/// written to disk, without the newline, and returns the line and the body's hash.
#[cfg(test)]
pub fn seal(body: &[u8]) -> (Vec<u8>, String) {
    let mut line = Vec::with_capacity(body.len() + SUFFIX_LEN);
    line.extend_from_slice(body);
    let hash = seal_in_place(&mut line);
    (line, hash)
}

/// [`seal`] without a copy: turns the record body in `line` into its sealed line and
/// returns the hash.
pub fn seal_in_place(line: &mut Vec<u8>) -> String {
    assert!(
        line.len() > 2 && line.ends_with(b"}"),
        "a record body is a JSON object with members"
    );
    let hash = sha256_hex(line);
    line.pop();
    line.extend_from_slice(HASH_MEMBER);
    line.extend_from_slice(hash.as_bytes());
    line.extend_from_slice(b"\"}");
    hash
}

/// Splits a line (without its newline) into the body that was hashed and the stored
/// hash. Returns `None` when the line does not end with a well-formed `hash` member.
pub fn unseal(line: &[u8]) -> Option<(Vec<u8>, &str)> {
    if line.len() < SUFFIX_LEN + 2 || !line.ends_with(b"\"}") {
        return None;
    }
    let member_start = line.len() - SUFFIX_LEN;
    let hash_start = member_start + HASH_MEMBER.len();
    if &line[member_start..hash_start] != HASH_MEMBER {
        return None;
    }
    let hash = std::str::from_utf8(&line[hash_start..hash_start + HASH_HEX_LEN]).ok()?;
    if !hash
        .bytes()
        .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let mut body = line[..member_start].to_vec();
    body.push(b'}');
    Some((body, hash))
}

/// The reason a record breaks the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainProblem {
    /// The line does not end with a `"hash":"<64 hex digits>"` member.
    MissingHash,
    /// The stored hash is not the hash of the record's contents.
    HashMismatch { stored: String, computed: String },
    /// The record's contents are not a JSON object with a `prev` string.
    Unreadable { reason: String },
    /// `prev` is not the hash of the record before.
    Unlinked { prev: String, expected: String },
    /// A line of a rotated file, or of the newest file before its last line, lacks its
    /// newline.
    Incomplete,
}

impl fmt::Display for ChainProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainProblem::MissingHash => {
                formatter.write_str("the line does not end with a \"hash\" member")
            }
            ChainProblem::HashMismatch { stored, computed } => write!(
                formatter,
                "the record's contents do not match its hash (stored {stored}, computed \
                 {computed}): the record was changed"
            ),
            ChainProblem::Unreadable { reason } => {
                write!(formatter, "the record is not valid: {reason}")
            }
            ChainProblem::Unlinked { prev, expected } if expected == GENESIS => write!(
                formatter,
                "the first record links to a record that is not in the log (prev {prev}): \
                 earlier records or files were removed"
            ),
            ChainProblem::Unlinked { prev, expected } => write!(
                formatter,
                "prev is {prev} but the record before has hash {expected}: a record was \
                 removed, inserted or moved here"
            ),
            ChainProblem::Incomplete => formatter.write_str("the line has no newline"),
        }
    }
}

/// The first record that breaks the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenRecord {
    pub path: PathBuf,
    /// 1-based line number in `path`.
    pub line: usize,
    /// 1-based position of the record in the whole log, rotated files included.
    pub record: usize,
    /// Event, run id and token id of the record, as far as they can be read.
    pub summary: String,
    pub problem: ChainProblem,
}

impl fmt::Display for BrokenRecord {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} line {} (record {}, {}): {}",
            self.path.display(),
            self.line,
            self.record,
            self.summary,
            self.problem
        )
    }
}

/// The result of verifying the audit log of one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The log files, oldest first.
    pub files: Vec<PathBuf>,
    /// Records checked, up to and including the broken one.
    pub records: usize,
    /// Hash of the last intact record.
    pub last_hash: Option<String>,
    /// The first record that breaks the chain, if any.
    pub broken: Option<BrokenRecord>,
    /// Bytes after the last newline of the newest file: a record being written, or one cut
    /// short by a crash. They are not a record and are not checked.
    pub incomplete_tail: usize,
}

/// The members of a record that verification reads.
#[derive(Deserialize)]
struct Links {
    prev: String,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    token: Option<TokenId>,
}

#[derive(Deserialize)]
struct TokenId {
    id: String,
}

/// Verifies the audit log in `tenant_dir`, rotated files included, and stops at the first
/// broken record.
pub fn verify(tenant_dir: &Path) -> Result<Verification, StateError> {
    let files = log_files(tenant_dir)?;
    let mut verification = Verification {
        files: files.clone(),
        records: 0,
        last_hash: None,
        broken: None,
        incomplete_tail: 0,
    };
    let mut expected = GENESIS.to_owned();

    for (file_index, path) in files.iter().enumerate() {
        let newest = file_index + 1 == files.len();
        let read_error = |source| StateError::Read {
            path: path.clone(),
            source,
        };
        let mut reader = BufReader::new(File::open(path).map_err(read_error)?);
        let mut line = Vec::new();
        let mut number = 0;
        loop {
            line.clear();
            let read = reader.read_until(b'\n', &mut line).map_err(read_error)?;
            if read == 0 {
                break;
            }
            number += 1;
            let complete = line.last() == Some(&b'\n');
            if complete {
                line.pop();
            } else if newest {
                verification.incomplete_tail = line.len();
                break;
            }

            verification.records += 1;
            let problem = if complete {
                check_record(&line, &expected)
            } else {
                Err(ChainProblem::Incomplete)
            };
            match problem {
                Ok(hash) => {
                    verification.last_hash = Some(hash.clone());
                    expected = hash;
                }
                Err(problem) => {
                    verification.broken = Some(BrokenRecord {
                        path: path.clone(),
                        line: number,
                        record: verification.records,
                        summary: summarize(&line),
                        problem,
                    });
                    return Ok(verification);
                }
            }
        }
    }
    Ok(verification)
}

/// Checks one line against the hash of the record before it and returns its own hash.
fn check_record(line: &[u8], expected_prev: &str) -> Result<String, ChainProblem> {
    let (body, stored) = unseal(line).ok_or(ChainProblem::MissingHash)?;
    let computed = sha256_hex(&body);
    if computed != stored {
        return Err(ChainProblem::HashMismatch {
            stored: stored.to_owned(),
            computed,
        });
    }
    let links: Links = serde_json::from_slice(&body).map_err(|error| ChainProblem::Unreadable {
        reason: error.to_string(),
    })?;
    if links.prev != expected_prev {
        return Err(ChainProblem::Unlinked {
            prev: links.prev,
            expected: expected_prev.to_owned(),
        });
    }
    Ok(computed)
}

/// Names a record by event, run id and token id, or by its first characters when it cannot
/// be parsed.
fn summarize(line: &[u8]) -> String {
    let body = unseal(line).map_or_else(|| line.to_vec(), |(body, _)| body);
    match serde_json::from_slice::<Links>(&body) {
        Ok(links) => {
            let mut parts = vec![format!(
                "event {}",
                links.event.as_deref().unwrap_or("(none)")
            )];
            if let Some(run_id) = links.run_id {
                parts.push(format!("run {run_id}"));
            }
            if let Some(token) = links.token {
                parts.push(format!("token {}", token.id));
            }
            parts.join(", ")
        }
        Err(_) => {
            let text = String::from_utf8_lossy(line);
            let start: String = text.chars().take(60).collect();
            format!("unparsable, starts with {start:?}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn seal_then_unseal_returns_body_and_hash() {
        let body = br#"{"event":"run_started","prev":"00"}"#;
        let (line, hash) = seal(body);
        let text = String::from_utf8(line.clone()).unwrap();
        assert!(text.ends_with(&format!(",\"hash\":\"{hash}\"}}")));
        serde_json::from_slice::<serde_json::Value>(&line).expect("a sealed line is JSON");

        let (unsealed, stored) = unseal(&line).unwrap();
        assert_eq!(unsealed, body);
        assert_eq!(stored, hash);
        assert_eq!(sha256_hex(&unsealed), hash);
    }

    #[test]
    fn unseal_rejects_lines_without_hash_member() {
        assert_eq!(unseal(br#"{"event":"run_started"}"#), None);
        let (mut line, _) = seal(br#"{"a":1}"#);
        let position = line.len() - 3;
        line[position] = b'G';
        assert_eq!(
            unseal(&line),
            None,
            "an uppercase or non-hex digit is rejected"
        );
    }

    #[test]
    fn first_record_must_link_to_genesis() {
        let (line, _) = seal(format!(r#"{{"event":"x","prev":"{}"}}"#, "1".repeat(64)).as_bytes());
        let problem = check_record(&line, GENESIS).unwrap_err();
        assert!(matches!(problem, ChainProblem::Unlinked { .. }));
        assert!(problem.to_string().contains("removed"));
    }

    #[test]
    fn every_changed_byte_is_found() {
        let body = format!(r#"{{"event":"delete_intent","run_id":"r1","prev":"{GENESIS}"}}"#);
        let (line, _) = seal(body.as_bytes());
        for index in 0..line.len() {
            let mut changed = line.clone();
            changed[index] ^= 0x01;
            assert!(
                check_record(&changed, GENESIS).is_err(),
                "a change at byte {index} went unnoticed"
            );
        }
    }
}
