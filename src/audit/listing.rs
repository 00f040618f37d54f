//! Listing a tenant: the full listing plus the server-filtered ones, sent together and
//! merged by id.
//!
//! The server's filters are never trusted to decide anything. The full listing is the set
//! of tokens judged; the `lastUsed le` and `lastUsed isnull` listings serve as a cross-check.
//! A token that a filtered listing returns but the full listing lacks means the full listing
//! is incomplete, which trips a breaker. Tokens on which the server's filter and the local
//! reading of `lastUsed` disagree are counted, because that points at clock skew or a
//! changed API. Every id is collected before any delete starts.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::isc::{Client, IscError, ListFilter, Token};
use crate::policy::{LAST_USED_GRANULARITY, Policy};

/// The merged view of a tenant.
#[derive(Debug, Default)]
pub struct Listed {
    /// Every distinct token, full listing first, in listing order.
    pub tokens: Vec<Token>,
    /// Count of the unfiltered listing, the base of the deletion-percent breaker.
    pub listed: usize,
    /// The instant sent with `lastUsed le`, when that listing was made.
    pub last_used_le: Option<DateTime<Utc>>,
    pub last_used_le_count: Option<usize>,
    pub never_used_count: Option<usize>,
    /// Repeated ids dropped from the listings.
    pub duplicates: usize,
    /// Tokens on which a server filter and the local reading of `lastUsed` disagree.
    pub filter_disagreements: usize,
    /// Local clock minus the API's `Date` header, taken when the full listing arrived.
    pub clock_skew: Option<TimeDelta>,
    /// Why the listing cannot be trusted to show the whole tenant.
    pub problem: Option<String>,
    /// Whether the full listing succeeded, so that tokens absent from it are really gone.
    pub complete: bool,
}

/// Failure that makes the tenant unusable for this run.
pub fn is_unreachable(error: &IscError) -> bool {
    matches!(
        error,
        IscError::Authentication { .. }
            | IscError::Forbidden { .. }
            | IscError::Network { .. }
            | IscError::InvalidUrl { .. }
            | IscError::DeadlineExceeded
    )
}

/// Lists the tenant three ways and merges the results.
///
/// Returns an error only when the tenant cannot be reached or patrol cannot authenticate;
/// any other listing failure is recorded in [`Listed::problem`].
pub async fn list_tenant(
    client: &Client,
    owner_id: Option<&str>,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Listed, IscError> {
    let mut listed = Listed::default();
    let mut problems = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();

    // lastUsed + granularity + validity < now - age implies lastUsed < now - age -
    // granularity, so this filter returns a superset of what the rules can catch.
    let last_used_le = policy
        .shortest_unused_age()
        .map(|age| now - age - LAST_USED_GRANULARITY);
    // The three listings do not depend on each other, so they are sent together: a run
    // waits for one round trip instead of three. The results are merged in a fixed order.
    let unused = async {
        match last_used_le {
            Some(instant) => Some(client.list(ListFilter::LastUsedLe(instant), owner_id).await),
            None => None,
        }
    };
    let (full, unused, never_used) = tokio::join!(
        client.list(ListFilter::All, owner_id),
        unused,
        client.list(ListFilter::LastUsedIsNull, owner_id),
    );

    match full {
        Ok(listing) => {
            listed.clock_skew = listing
                .server_date
                .map(|server_date| Utc::now() - server_date);
            listed.listed = listing.tokens.len();
            listed.complete = true;
            for token in listing.tokens {
                insert(&mut listed, &mut index, token);
            }
        }
        Err(error) if is_unreachable(&error) => return Err(error),
        Err(error) => problems.push(format!("the full listing failed: {error}")),
    }

    let mut missing = 0;
    if let (Some(instant), Some(unused)) = (last_used_le, unused) {
        listed.last_used_le = Some(instant);
        match unused {
            Ok(listing) => {
                listed.last_used_le_count = Some(listing.tokens.len());
                let returned: std::collections::HashSet<&str> = listing
                    .tokens
                    .iter()
                    .map(|token| token.id.as_str())
                    .collect();
                let missed = listed
                    .tokens
                    .iter()
                    .filter(|token| token.last_used.is_some_and(|used| used <= instant))
                    .filter(|token| !returned.contains(token.id.as_str()))
                    .count();
                listed.filter_disagreements += missed;
                for token in listing.tokens.iter() {
                    if token.last_used.is_none_or(|used| used > instant) {
                        listed.filter_disagreements += 1;
                    }
                }
                missing += merge(&mut listed, &mut index, listing.tokens);
            }
            Err(error) => problems.push(format!("the lastUsed le listing failed: {error}")),
        }
    }

    match never_used {
        Ok(listing) => {
            listed.never_used_count = Some(listing.tokens.len());
            let returned: std::collections::HashSet<&str> = listing
                .tokens
                .iter()
                .map(|token| token.id.as_str())
                .collect();
            let missed = listed
                .tokens
                .iter()
                .filter(|token| token.last_used.is_none() && !returned.contains(token.id.as_str()))
                .count();
            listed.filter_disagreements += missed;
            listed.filter_disagreements += listing
                .tokens
                .iter()
                .filter(|token| token.last_used.is_some())
                .count();
            missing += merge(&mut listed, &mut index, listing.tokens);
        }
        Err(error) => problems.push(format!("the lastUsed isnull listing failed: {error}")),
    }

    if listed.complete && missing > 0 {
        problems.push(format!(
            "{missing} token(s) returned by a filtered listing are missing from the full listing"
        ));
    }
    if listed.filter_disagreements > 0 {
        tracing::warn!(
            disagreements = listed.filter_disagreements,
            "the server's lastUsed filters disagree with the local reading of lastUsed; \
             decisions use the local reading only (check the clock and the API version)"
        );
    }
    if !problems.is_empty() {
        listed.problem = Some(problems.join("; "));
    }
    Ok(listed)
}

fn insert(listed: &mut Listed, index: &mut HashMap<String, usize>, token: Token) -> bool {
    if index.contains_key(&token.id) {
        listed.duplicates += 1;
        return false;
    }
    index.insert(token.id.clone(), listed.tokens.len());
    listed.tokens.push(token);
    true
}

/// Adds tokens from a filtered listing that the merged set lacks; returns how many.
fn merge(listed: &mut Listed, index: &mut HashMap<String, usize>, tokens: Vec<Token>) -> usize {
    let mut seen_here = std::collections::HashSet::new();
    let mut added = 0;
    for token in tokens {
        if !seen_here.insert(token.id.clone()) {
            listed.duplicates += 1;
            continue;
        }
        if !index.contains_key(&token.id) {
            index.insert(token.id.clone(), listed.tokens.len());
            listed.tokens.push(token);
            added += 1;
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: &str) -> Token {
        serde_json::from_value(serde_json::json!({
            "id": id, "name": id, "owner": {}, "created": "2026-01-01T00:00:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn repeated_ids_are_dropped_and_counted() {
        let mut listed = Listed::default();
        let mut index = HashMap::new();
        assert!(insert(&mut listed, &mut index, token("a")));
        assert!(!insert(&mut listed, &mut index, token("a")));
        assert!(insert(&mut listed, &mut index, token("b")));
        assert_eq!(listed.tokens.len(), 2);
        assert_eq!(listed.duplicates, 1);
    }

    #[test]
    fn filtered_listing_adds_only_unseen_tokens() {
        let mut listed = Listed::default();
        let mut index = HashMap::new();
        insert(&mut listed, &mut index, token("a"));
        let added = merge(
            &mut listed,
            &mut index,
            vec![token("a"), token("c"), token("c")],
        );
        assert_eq!(added, 1);
        assert_eq!(listed.duplicates, 1);
        let ids: Vec<&str> = listed
            .tokens
            .iter()
            .map(|token| token.id.as_str())
            .collect();
        assert_eq!(ids, ["a", "c"]);
    }
}
