//! The API client. Placeholder signatures; the real implementation replaces this file.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use super::{IscError, Token};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiVersion {
    #[default]
    V3,
    Beta,
    V2024,
    V2025,
    V2026,
    V1,
}

#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub api_url: String,
    pub api_version: ApiVersion,
    pub client_id: String,
    pub client_secret: SecretString,
    pub rate_limit_requests: u32,
    pub rate_limit_window: Duration,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_retries: u32,
    pub max_retry_after: Duration,
}

impl ClientSettings {
    pub fn new(
        api_url: &str,
        api_version: ApiVersion,
        client_id: &str,
        client_secret: SecretString,
    ) -> Self {
        Self {
            api_url: api_url.to_owned(),
            api_version,
            client_id: client_id.to_owned(),
            client_secret,
            rate_limit_requests: 100,
            rate_limit_window: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_retries: 8,
            max_retry_after: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Client;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFilter {
    All,
    LastUsedLe(DateTime<Utc>),
    LastUsedIsNull,
}

#[derive(Debug, Clone)]
pub struct Listing {
    pub tokens: Vec<Token>,
    pub server_date: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    AlreadyGone,
}

#[derive(Debug, Clone, Default)]
pub struct RequestStats {
    /// Requests by (operation, status class), for example ("delete", "2xx").
    pub requests: BTreeMap<(String, String), u64>,
    pub retries: u64,
    pub rate_limited: u64,
    pub rate_limit_wait: Duration,
}

impl Client {
    pub fn new(_settings: ClientSettings) -> Result<Self, IscError> {
        todo!()
    }
    pub fn with_deadline(&self, _deadline: tokio::time::Instant) -> Self {
        todo!()
    }
    pub async fn list(
        &self,
        _filter: ListFilter,
        _owner_id: Option<&str>,
    ) -> Result<Listing, IscError> {
        todo!()
    }
    pub async fn delete(&self, _id: &str) -> Result<DeleteOutcome, IscError> {
        todo!()
    }
    pub fn stats(&self) -> RequestStats {
        todo!()
    }
}
