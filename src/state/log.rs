//! The append-only audit log: one JSON record per line, per tenant.
//!
//! Every delete is recorded twice: an intent written and synced to disk before the request,
//! and a result after it. Both carry the token's full metadata and the matching rules, so
//! that a deleted token's owner can recreate it with the same name and scopes. Records never
//! contain a secret: tokens as listed carry no secret, and the client secret never reaches
//! this module.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StateError;
use crate::isc::Token;

const LOG_FILE: &str = "audit.jsonl";

/// One audit log record.
#[derive(Debug, Clone, Serialize)]
pub struct Event<'a> {
    pub event: &'static str,
    pub run_id: &'a str,
    pub tenant: &'a str,
    pub at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<&'a Token>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl<'a> Event<'a> {
    pub fn new(event: &'static str, run_id: &'a str, tenant: &'a str) -> Self {
        Self {
            event,
            run_id,
            tenant,
            at: Utc::now(),
            token: None,
            rules: Vec::new(),
            result: None,
            message: None,
            details: None,
        }
    }
}

/// Appends records to `<tenant dir>/audit.jsonl`.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
}

impl AuditLog {
    pub fn open(tenant_dir: &Path) -> Result<AuditLog, StateError> {
        let path = tenant_dir.join(LOG_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| StateError::Write {
                path: path.clone(),
                source,
            })?;
        Ok(AuditLog { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record. With `sync`, returns only once the record is on disk, which
    /// delete intents need before their request is sent.
    pub fn append(&mut self, event: &Event<'_>, sync: bool) -> Result<(), StateError> {
        let mut line = serde_json::to_vec(event).expect("audit events serialize");
        line.push(b'\n');
        let error = |source| StateError::Write {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&line).map_err(error)?;
        if sync {
            self.file.sync_data().map_err(error)?;
        }
        Ok(())
    }
}
