//! Deleting the tokens a run decided to delete, a few at a time.
//!
//! Each delete is bracketed in the audit log: the intent is appended and synced to disk
//! before the request is sent, and the result (synced too) when the response arrives. Both
//! carry the token's metadata and matching rules. If the intent cannot be written, that
//! token and every later one are not deleted. A result that cannot be written leaves its
//! intent open; the caller reports it in `run_finished`, so that the next run reconciles it. The client
//! paces the requests; the concurrency here only keeps the pipeline full when the API is
//! slow to answer. It starts at the caller's number and grows while the mean delete latency
//! times the rate limit needs more requests in flight, up to the limit of one window.

use std::sync::Arc;
use std::time::Duration;

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
    rules: &[Arc<[String]>],
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
    let (limit, window) = client.rate_limit();

    loop {
        let allowed = allowed_in_flight(concurrency, limit, window, client.mean_delete_latency());
        while stopped.is_none() && !stopping() && in_flight.len() < allowed {
            let Some(index) = pending.next() else { break };
            let token = &tokens[index];
            let intent = Record::for_token(
                EventKind::DeleteIntent,
                run_id,
                tenant,
                token,
                rules[index].to_vec(),
            );
            if let Err(error) = synced(|| log.append(intent, true)) {
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
                rules[index].to_vec(),
            )
        };
        if let Err(error) = synced(|| log.append(record, true)) {
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

/// Runs a synced audit log write. On a multi-threaded runtime the worker first hands its
/// other tasks to another thread, so the wait for the disk (milliseconds, at times tens)
/// does not hold back deletes whose pacing slot has come. A late send bunches requests at
/// the service and can cost a 429.
fn synced<T>(write: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(write),
        _ => write(),
    }
}

/// Returns how many deletes may be in flight at once: at least `floor`, and otherwise as
/// many as the rate limit can start during one mean `latency` (Little's law) plus one, so
/// slow responses do not hold the run below the limit. Beyond `floor`, never more than
/// `limit`, the most the pacer starts within one window.
fn allowed_in_flight(
    floor: usize,
    limit: u32,
    window: Duration,
    latency: Option<Duration>,
) -> usize {
    let floor = floor.max(1);
    let Some(latency) = latency else {
        return floor;
    };
    let per_second = f64::from(limit) / window.as_secs_f64().max(f64::MIN_POSITIVE);
    let needed = (per_second * latency.as_secs_f64()).ceil() as usize + 1;
    needed.min(limit as usize).max(floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn in_flight_starts_at_floor() {
        assert_eq!(allowed_in_flight(8, 100, SECOND, None), 8);
        assert_eq!(allowed_in_flight(0, 100, SECOND, None), 1);
    }

    #[test]
    fn in_flight_keeps_floor_when_pacing_binds() {
        // 10 requests per second at 100 ms need 2 in flight.
        let latency = Some(Duration::from_millis(100));
        assert_eq!(allowed_in_flight(8, 100, 10 * SECOND, latency), 8);
    }

    #[test]
    fn in_flight_grows_with_latency() {
        // 100 requests per second at 100 ms need 10 in flight, plus one.
        let latency = Some(Duration::from_millis(100));
        assert_eq!(allowed_in_flight(8, 100, SECOND, latency), 11);
        let slow = Some(Duration::from_millis(2_500));
        assert_eq!(allowed_in_flight(8, 100, 10 * SECOND, slow), 26);
    }

    #[test]
    fn in_flight_never_exceeds_window_limit() {
        let latency = Some(Duration::from_secs(30));
        assert_eq!(allowed_in_flight(8, 100, SECOND, latency), 100);
        assert_eq!(allowed_in_flight(8, 5, SECOND, latency), 8);
    }
}
