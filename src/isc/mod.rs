//! Client of the ISC personal access token API.
//!
//! [`Client`] lists and deletes the tokens of one tenant with an OAuth 2 client credentials
//! token. It paces its requests under the tenant's rate limit, retries what may succeed on a
//! second try, and reports every failure as an [`IscError`] by cause. [`Token`] is the
//! token as the list endpoint returns it. What to list and what to delete is the audit's
//! decision, not the client's.

mod array;
mod auth;
pub mod client;
pub mod error;
mod fast_element;
pub mod model;
mod pacer;
mod request;
mod retry;
mod stats;
pub(crate) mod url;

pub use client::{
    ApiVersion, Client, ClientSettings, DeleteOutcome, LATENCY_BUCKETS_SECONDS, LatencyHistogram,
    ListFilter, Listing, ParseApiVersionError, RequestStats, SummaryListing, USER_AGENT,
};
pub use error::IscError;
pub use model::{Owner, ReadInstant, Token, TokenSummary};

/// Parses a whole listing body of full tokens as a response whose body arrives in one
/// chunk, for the listing parse benchmark.
#[doc(hidden)]
pub fn parse_token_listing(body: &[u8]) -> Result<Vec<Token>, String> {
    array::parse_whole(body)
}

/// Parses a whole listing body into summaries, as [`parse_token_listing`] does tokens.
#[doc(hidden)]
pub fn parse_summary_listing(body: &[u8]) -> Result<Vec<TokenSummary>, String> {
    array::parse_whole(body)
}
