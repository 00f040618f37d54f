//! Listing a tenant: the full listing plus the server-filtered ones, sent together and
//! merged by id.
//!
//! The server's filters are never trusted to decide anything. The full listing is the set
//! of tokens judged; the `lastUsed le` and `lastUsed isnull` listings serve as a cross-check.
//! A token that a filtered listing returns but the full listing lacks means the full listing
//! is incomplete, which trips a breaker. Tokens on which the server's filter and the local
//! reading of `lastUsed` disagree are counted, because that points at clock skew or a
//! changed API. Every id is collected before any delete starts.

use chrono::{DateTime, TimeDelta, Utc};

use super::ids::{IdMap, IdSet, id_map, id_set};
use crate::isc::{Client, IscError, ListFilter, Token, TokenSummary};
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

    // lastUsed + granularity + validity < now - age implies lastUsed < now - age -
    // granularity, so this filter returns a superset of what the rules can catch.
    let last_used_le = policy
        .shortest_unused_age()
        .map(|age| now - age - LAST_USED_GRANULARITY);
    // The three listings do not depend on each other, so they are sent together: a run
    // waits for one round trip instead of three. The filtered ones only cross-check the
    // full one, so they keep each token's id and last use, not the whole token.
    let unused = async {
        match last_used_le {
            Some(instant) => Some(
                client
                    .list_summaries(ListFilter::LastUsedLe(instant), owner_id)
                    .await,
            ),
            None => None,
        }
    };
    let (full, unused, never_used) = tokio::join!(
        client.list(ListFilter::All, owner_id),
        unused,
        client.list_summaries(ListFilter::LastUsedIsNull, owner_id),
    );

    match full {
        Ok(listing) => {
            listed.clock_skew = listing
                .server_date
                .map(|server_date| Utc::now() - server_date);
            listed.listed = listing.tokens.len();
            listed.complete = true;
            listed.tokens = listing.tokens;
            listed.duplicates += drop_repeated(&mut listed.tokens);
        }
        Err(error) if is_unreachable(&error) => return Err(error),
        Err(error) => problems.push(format!("the full listing failed: {error}")),
    }

    // Ids that a filtered listing returned and the full listing lacks, in listing order.
    let mut missing_unused = Vec::new();
    let mut missing_never_used = Vec::new();
    {
        let positions = positions(&listed.tokens);
        let mut missing_ids = id_set(0);

        if let (Some(instant), Some(unused)) = (last_used_le, unused) {
            listed.last_used_le = Some(instant);
            match unused {
                Ok(listing) => {
                    listed.last_used_le_count = Some(listing.tokens.len());
                    let found = cross_check(
                        &listing.tokens,
                        &positions,
                        &mut missing_ids,
                        &mut listed.duplicates,
                    );
                    listed.filter_disagreements += listed
                        .tokens
                        .iter()
                        .zip(&found.returned)
                        .filter(|(token, returned)| {
                            !**returned && token.last_used.is_some_and(|used| used <= instant)
                        })
                        .count();
                    listed.filter_disagreements += listing
                        .tokens
                        .iter()
                        .filter(|token| token.last_used.is_none_or(|used| used > instant))
                        .count();
                    missing_unused = found.missing;
                }
                Err(error) => problems.push(format!("the lastUsed le listing failed: {error}")),
            }
        }

        match never_used {
            Ok(listing) => {
                listed.never_used_count = Some(listing.tokens.len());
                let found = cross_check(
                    &listing.tokens,
                    &positions,
                    &mut missing_ids,
                    &mut listed.duplicates,
                );
                listed.filter_disagreements += listed
                    .tokens
                    .iter()
                    .zip(&found.returned)
                    .filter(|(token, returned)| !**returned && token.last_used.is_none())
                    .count();
                listed.filter_disagreements += listing
                    .tokens
                    .iter()
                    .filter(|token| token.last_used.is_some())
                    .count();
                missing_never_used = found.missing;
            }
            Err(error) => problems.push(format!("the lastUsed isnull listing failed: {error}")),
        }
    }

    // Tokens that only a filtered listing showed are judged too, so that a report shows
    // them; their listing is fetched again in full. This happens only when the full listing
    // failed or lacks tokens, and then a breaker stops every delete of the run anyway.
    let missing = missing_unused.len() + missing_never_used.len();
    if let (Some(instant), false) = (last_used_le, missing_unused.is_empty()) {
        let filter = ListFilter::LastUsedLe(instant);
        if let Err(error) = add_tokens(client, filter, owner_id, &missing_unused, &mut listed).await
        {
            problems.push(format!(
                "the lastUsed le listing failed when fetched again: {error}"
            ));
        }
    }
    if !missing_never_used.is_empty() {
        let filter = ListFilter::LastUsedIsNull;
        if let Err(error) =
            add_tokens(client, filter, owner_id, &missing_never_used, &mut listed).await
        {
            problems.push(format!(
                "the lastUsed isnull listing failed when fetched again: {error}"
            ));
        }
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

/// Drops every token whose id appeared earlier in the list; returns how many.
fn drop_repeated(tokens: &mut Vec<Token>) -> usize {
    let mut seen = id_set(tokens.len());
    let first: Vec<bool> = tokens
        .iter()
        .map(|token| seen.insert(token.id.as_str()))
        .collect();
    drop(seen);
    let before = tokens.len();
    let mut first = first.into_iter();
    // `retain` visits the tokens once each, in order.
    tokens.retain(|_| first.next().unwrap_or(true));
    before - tokens.len()
}

/// Maps each id of the full listing, without repeats, to its position.
fn positions(tokens: &[Token]) -> IdMap<&str, usize> {
    let mut positions = id_map(tokens.len());
    for (position, token) in tokens.iter().enumerate() {
        positions.insert(token.id.as_str(), position);
    }
    positions
}

/// The comparison of one filtered listing with the full listing.
#[derive(Debug, PartialEq, Eq)]
struct CrossCheck {
    /// Whether the filtered listing returned the full listing's token at each position.
    returned: Vec<bool>,
    /// Ids that the full listing lacks and no earlier cross-check reported, in order.
    missing: Vec<String>,
}

/// Marks the tokens of the full listing that `summaries` returned, counts the ids that
/// `summaries` repeats, and collects the ids the full listing lacks. `missing_ids` contains
/// the lacking ids of earlier cross-checks, so that each is reported once.
fn cross_check(
    summaries: &[TokenSummary],
    positions: &IdMap<&str, usize>,
    missing_ids: &mut IdSet<String>,
    duplicates: &mut usize,
) -> CrossCheck {
    let mut returned = vec![false; positions.len()];
    let mut missing = Vec::new();
    let mut returned_missing = id_set(0);
    for summary in summaries {
        let id = summary.id.as_str();
        let repeated = match positions.get(id) {
            Some(&position) => std::mem::replace(&mut returned[position], true),
            None => {
                if missing_ids.insert(summary.id.clone()) {
                    missing.push(summary.id.clone());
                }
                !returned_missing.insert(id)
            }
        };
        if repeated {
            *duplicates += 1;
        }
    }
    CrossCheck { returned, missing }
}

/// Lists `filter` again, in full, and appends the tokens with the given ids.
async fn add_tokens(
    client: &Client,
    filter: ListFilter,
    owner_id: Option<&str>,
    ids: &[String],
    listed: &mut Listed,
) -> Result<(), IscError> {
    let mut requested = id_set(ids.len());
    requested.extend(ids.iter().map(String::as_str));
    let listing = client.list(filter, owner_id).await?;
    let mut added = id_set(ids.len());
    for token in listing.tokens {
        if requested.contains(token.id.as_str()) && added.insert(token.id.clone()) {
            listed.tokens.push(token);
        }
    }
    Ok(())
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

    fn summary(id: &str) -> TokenSummary {
        TokenSummary {
            id: id.to_owned(),
            last_used: None,
        }
    }

    #[test]
    fn repeated_ids_are_dropped_and_counted() {
        let mut tokens = vec![token("a"), token("a"), token("b"), token("a")];
        assert_eq!(drop_repeated(&mut tokens), 2);
        let ids: Vec<&str> = tokens.iter().map(|token| token.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn cross_check_marks_returned_tokens_and_counts_repeats() {
        let tokens = [token("a"), token("b"), token("c")];
        let positions = positions(&tokens);
        let mut missing = id_set(0);
        let mut duplicates = 0;
        let summaries = [
            summary("a"),
            summary("c"),
            summary("c"),
            summary("x"),
            summary("x"),
        ];
        let found = cross_check(&summaries, &positions, &mut missing, &mut duplicates);
        assert_eq!(found.returned, [true, false, true]);
        assert_eq!(found.missing, ["x"]);
        assert_eq!(duplicates, 2);
    }

    #[test]
    fn ids_missing_from_the_full_listing_are_reported_once() {
        let tokens = [token("a")];
        let positions = positions(&tokens);
        let mut missing = id_set(0);
        let mut duplicates = 0;
        let first = cross_check(
            &[summary("a"), summary("c"), summary("c")],
            &positions,
            &mut missing,
            &mut duplicates,
        );
        assert_eq!(first.missing, ["c"]);
        let second = cross_check(
            &[summary("c"), summary("d")],
            &positions,
            &mut missing,
            &mut duplicates,
        );
        assert_eq!(second.missing, ["d"]);
        assert_eq!(duplicates, 1);
    }
}
