//! Deleting the tokens a run decided to delete, a few at a time.
//!
//! Each delete is bracketed in the audit log: the intent is appended and synced to disk
//! before the request is sent, and the result (synced too) when the response arrives. Both
//! carry the token's metadata and matching rules. If the intent cannot be written, that
//! token and every later one are not deleted. A result that cannot be written leaves its
//! intent open; the caller reports it in `run_finished`, so that the next run reconciles it. The client
//! paces the requests; the concurrency here only keeps the pipeline full when the API is
//! slow to answer.

use tokio::task::JoinSet;

use crate::isc::{Client, DeleteOutcome, Token};
use crate::safety::Outcome;
use crate::state::{AuditLog, DeleteStatus, EventKind, Record};

/// The result of deleting one token.
#[derive(Debug)]
pub struct DeleteResult {
    pub outcome: Outcome,
    pub error: Option<String>,
    /// Whether the audit log contains this result (or no intent was written for it).
    pub recorded: bool,
}

/// Deletes the tokens at `order` (indexes into `tokens`) and returns each one's result.
/// `rules[i]` names the rules that match `tokens[i]`.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site passes the run's parts"
)]
pub async fn delete_all(
    client: &Client,
    tokens: &[Token],
    order: &[usize],
    rules: &[Vec<String>],
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
            let intent = Record::for_token(
                EventKind::DeleteIntent,
                run_id,
                tenant,
                token,
                rules[index].clone(),
            );
            if let Err(error) = log.append(intent, true) {
                tracing::error!(%error, token_id = %token.id, "cannot record the delete intent; no further token is deleted in this run");
                let message = format!("not deleted: the audit log is not writable ({error})");
                results.push((
                    index,
                    DeleteResult {
                        outcome: Outcome::Failed,
                        error: Some(message.clone()),
                        recorded: true,
                    },
                ));
                stopped = Some(message);
                break;
            }
            let client = client.clone();
            let id = token.id.clone();
            let delete = async move { (index, client.delete(&id).await) };
            in_flight.spawn(tracing::Instrument::in_current_span(delete));
        }

        let Some(joined) = in_flight.join_next().await else {
            break;
        };
        let (index, answer) = joined.expect("delete tasks do not panic");
        let token = &tokens[index];
        let (mut result, status) = match answer {
            Ok(DeleteOutcome::Deleted) => (
                DeleteResult {
                    outcome: Outcome::Deleted,
                    error: None,
                    recorded: true,
                },
                DeleteStatus::Deleted,
            ),
            Ok(DeleteOutcome::AlreadyGone) => (
                DeleteResult {
                    outcome: Outcome::Gone,
                    error: None,
                    recorded: true,
                },
                DeleteStatus::Gone,
            ),
            Err(error) => {
                tracing::warn!(tenant, token_id = %token.id, token_name = %token.name, %error, "delete failed");
                (
                    DeleteResult {
                        outcome: Outcome::Failed,
                        error: Some(error.to_string()),
                        recorded: true,
                    },
                    DeleteStatus::Failed,
                )
            }
        };
        let record = Record {
            result: Some(status),
            error: result.error.clone(),
            ..Record::for_token(
                EventKind::DeleteResult,
                run_id,
                tenant,
                token,
                rules[index].clone(),
            )
        };
        if let Err(error) = log.append(record, true) {
            tracing::error!(%error, token_id = %token.id, "cannot record the delete result; the next run reconciles it");
            result.recorded = false;
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
                    recorded: true,
                },
            ));
        }
    } else {
        // Stopping: deletes not yet started wait for the next run, first in line.
        let deferred: Vec<usize> = pending.collect();
        if !deferred.is_empty() {
            tracing::info!(
                tenant,
                deferred = deferred.len(),
                "stopping: deletes not yet started are deferred to the next run"
            );
        }
        for index in deferred {
            results.push((
                index,
                DeleteResult {
                    outcome: Outcome::Deferred,
                    error: None,
                    recorded: true,
                },
            ));
        }
    }
    results
}
