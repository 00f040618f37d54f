//! Deleting the tokens a run decided to delete, a few at a time.
//!
//! Each delete is bracketed in the audit log: the intent is appended and synced to disk
//! before the request is sent, and the result is appended when the answer arrives. If the
//! intent cannot be written, that token and every later one are not deleted. The client
//! paces the requests; the concurrency here only keeps the pipeline full when the API is
//! slow to answer.

use tokio::task::JoinSet;

use crate::isc::{Client, DeleteOutcome, Token};
use crate::policy::{Judgment, Policy};
use crate::safety::Outcome;
use crate::state::{AuditLog, Event};

/// The result of deleting one token.
#[derive(Debug)]
pub struct DeleteResult {
    pub outcome: Outcome,
    pub error: Option<String>,
}

/// Deletes the tokens at `order` (indexes into `tokens`) and returns each one's result.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site passes the run's parts"
)]
pub async fn delete_all(
    client: &Client,
    tokens: &[Token],
    order: &[usize],
    judgments: &[Judgment],
    policy: &Policy,
    log: &mut AuditLog,
    run_id: &str,
    tenant: &str,
    concurrency: usize,
    stop: Option<&tokio::sync::watch::Receiver<bool>>,
) -> Vec<(usize, DeleteResult)> {
    let mut results = Vec::with_capacity(order.len());
    let mut in_flight = JoinSet::new();
    let mut pending = order.iter().copied();
    let mut stopped: Option<String> = None;
    let stopping = || stop.is_some_and(|stop| *stop.borrow());

    loop {
        while stopped.is_none() && !stopping() && in_flight.len() < concurrency.max(1) {
            let Some(index) = pending.next() else { break };
            let token = &tokens[index];
            let intent = Event {
                token: Some(token),
                rules: policy.rule_names(&judgments[index]),
                ..Event::new("delete_intent", run_id, tenant)
            };
            if let Err(error) = log.append(&intent, true) {
                tracing::error!(%error, token_id = %token.id, "cannot record the delete intent; no further token is deleted in this run");
                let message = format!("not deleted: the audit log is not writable ({error})");
                results.push((
                    index,
                    DeleteResult {
                        outcome: Outcome::Failed,
                        error: Some(message.clone()),
                    },
                ));
                stopped = Some(message);
                break;
            }
            let client = client.clone();
            let id = token.id.clone();
            in_flight.spawn(async move { (index, client.delete(&id).await) });
        }

        let Some(joined) = in_flight.join_next().await else {
            break;
        };
        let (index, answer) = joined.expect("delete tasks do not panic");
        let token = &tokens[index];
        let result = match answer {
            Ok(DeleteOutcome::Deleted) => DeleteResult {
                outcome: Outcome::Deleted,
                error: None,
            },
            Ok(DeleteOutcome::AlreadyGone) => DeleteResult {
                outcome: Outcome::Gone,
                error: None,
            },
            Err(error) => {
                tracing::warn!(tenant, token_id = %token.id, token_name = %token.name, %error, "delete failed");
                DeleteResult {
                    outcome: Outcome::Failed,
                    error: Some(error.to_string()),
                }
            }
        };
        let event = Event {
            token: Some(token),
            result: Some(result.outcome.as_str()),
            message: result.error.clone(),
            ..Event::new("delete_result", run_id, tenant)
        };
        if let Err(error) = log.append(&event, true) {
            tracing::error!(%error, token_id = %token.id, "cannot record the delete result");
        }
        results.push((index, result));
    }

    if let Some(message) = stopped {
        for index in pending {
            results.push((
                index,
                DeleteResult {
                    outcome: Outcome::Failed,
                    error: Some(message.clone()),
                },
            ));
        }
    }
    results
}
