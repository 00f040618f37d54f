//! Reconciling deletes that an earlier process left without a result.
//!
//! A `delete_intent` without a `delete_result` means the process stopped between the two,
//! so the request may or may not have reached the tenant. At the start of the next run,
//! once the tenant is listed, each such intent gets its result. It is `deleted` when the
//! token is no longer listed, and `not_deleted` when it still is; such a token stays a
//! candidate and is judged like any other. "No longer listed" needs a listing that can be trusted to
//! show the whole tenant; after an incomplete one, intents of unlisted tokens stay open for
//! a later run. Each result names the run of its intent in `intent_run_id`.

use chrono::{DateTime, Utc};

use super::ids::id_set;
use super::listing::Listed;
use crate::state::{AuditLog, DeleteStatus, EventKind, Record, StateError, TokenRecord};

/// A delete intent of an earlier run, closed by this run.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    /// The token's metadata as the intent recorded it.
    pub token: TokenRecord,
    pub rules: Vec<String>,
    /// The run that wrote the intent.
    pub intent_run_id: String,
    /// When the intent was written.
    pub intent_at: DateTime<Utc>,
    /// [`DeleteStatus::Deleted`] or [`DeleteStatus::NotDeleted`].
    pub status: DeleteStatus,
}

/// Decides the result of each open intent from the listing. Returns the intents it could
/// decide and the ones that stay open.
pub fn reconcile(open: Vec<Record>, listed: &Listed) -> (Vec<Recovered>, Vec<Record>) {
    // Most runs find no open intent, and the set of listed ids costs a hash per token.
    if open.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let mut listed_ids = id_set(listed.tokens.len());
    listed_ids.extend(listed.tokens.iter().map(|token| token.id.as_str()));
    let whole_tenant = listed.complete && listed.problem.is_none();

    let mut recovered = Vec::new();
    let mut still_open = Vec::new();
    for intent in open {
        let Some(token) = intent.token.clone() else {
            continue;
        };
        let status = if listed_ids.contains(token.id.as_str()) {
            DeleteStatus::NotDeleted
        } else if whole_tenant {
            DeleteStatus::Deleted
        } else {
            still_open.push(intent);
            continue;
        };
        recovered.push(Recovered {
            token,
            rules: intent.rules.unwrap_or_default(),
            intent_run_id: intent.run_id,
            intent_at: intent.at,
            status,
        });
    }
    (recovered, still_open)
}

/// Appends, synced, one `delete_result` per reconciled intent.
pub fn record_results(
    log: &mut AuditLog,
    run_id: &str,
    tenant: &str,
    recovered: &[Recovered],
) -> Result<(), StateError> {
    for entry in recovered {
        let message = match entry.status {
            DeleteStatus::NotDeleted => {
                "the process stopped before the result of this delete was recorded; the token \
                 is still listed, so it was not deleted and stays a candidate"
            }
            _ => {
                "the process stopped before the result of this delete was recorded; the token \
                 is no longer listed, so it is recorded as deleted"
            }
        };
        let record = Record {
            result: Some(entry.status),
            intent_run_id: Some(entry.intent_run_id.clone()),
            message: Some(message.to_owned()),
            ..Record::for_token(
                EventKind::DeleteResult,
                run_id,
                tenant,
                entry.token.clone(),
                entry.rules.clone(),
            )
        };
        log.append(record, true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isc::Token;

    fn token(id: &str) -> Token {
        serde_json::from_value(serde_json::json!({
            "id": id, "name": format!("name-{id}"),
            "owner": {"id": "o1", "name": "Ada"},
            "created": "2026-01-01T00:00:00Z",
        }))
        .unwrap()
    }

    fn intent(id: &str) -> Record {
        Record::for_token(
            EventKind::DeleteIntent,
            "r1",
            "acme",
            &token(id),
            vec!["unused-90d".into()],
        )
    }

    fn listing(ids: &[&str], complete: bool, problem: Option<&str>) -> Listed {
        Listed {
            tokens: ids.iter().map(|id| token(id)).collect(),
            listed: ids.len(),
            complete,
            problem: problem.map(str::to_owned),
            ..Listed::default()
        }
    }

    #[test]
    fn reconcile_follows_listing() {
        let (recovered, open) = reconcile(
            vec![intent("gone"), intent("here")],
            &listing(&["here"], true, None),
        );
        assert!(open.is_empty());
        let statuses: Vec<(&str, DeleteStatus)> = recovered
            .iter()
            .map(|entry| (entry.token.id.as_str(), entry.status))
            .collect();
        assert_eq!(
            statuses,
            [
                ("gone", DeleteStatus::Deleted),
                ("here", DeleteStatus::NotDeleted)
            ]
        );
        assert_eq!(recovered[0].intent_run_id, "r1");
        assert_eq!(recovered[0].rules, ["unused-90d"]);
    }

    #[test]
    fn incomplete_listing_leaves_unlisted_intents_open() {
        for listed in [
            listing(&["here"], false, Some("the full listing failed")),
            listing(&["here"], true, Some("1 token(s) are missing")),
        ] {
            let (recovered, open) = reconcile(vec![intent("gone"), intent("here")], &listed);
            assert_eq!(recovered.len(), 1);
            assert_eq!(recovered[0].token.id, "here");
            assert_eq!(recovered[0].status, DeleteStatus::NotDeleted);
            assert_eq!(open.len(), 1);
            assert_eq!(open[0].token.as_ref().unwrap().id, "gone");
        }
    }
}
