//! One audit run of one tenant: list, judge, apply the safety rails, delete, record.
//!
//! The run reads top to bottom in [`run_tenant`]. Every token is judged locally; ids are
//! collected in full before the first delete; each delete is written to the audit log
//! before its request and after it; the first-flagged times are saved before any delete
//! and again after the last one. Deletes that an earlier process left without a result are
//! reconciled right after the listing. The run's JSON report is written to the state
//! directory at the end. A forecast (`--as-of`) reads the state but writes nothing and
//! deletes nothing.

mod delete;
mod ids;
mod listing;
mod recovery;
mod trail;

pub use listing::is_unreachable;
pub use recovery::Recovered;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::config::{Config, Tenant};
use crate::isc::{Client, IscError, RequestStats, Token};
use crate::policy::{Action, Judgment, LAST_USED_GRANULARITY, Policy};
use crate::safety::{
    self, Assessment, Breaker, BreakerInputs, Context, Outcome, Protection, check_breakers,
};
use crate::state::{AuditLog, DeleteStatus, EventKind, Record, Rotation, StateError, TenantState};
use trail::{FlagChanges, Trail};

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The instant the policy is evaluated at.
    pub now: DateTime<Utc>,
    /// A forecast at a given instant: read the state, write nothing, delete nothing.
    pub forecast: bool,
    pub dry_run: bool,
    /// Deletes in flight at once, at least; more when slow responses would keep the run below
    /// the rate limit. The client's pacing bounds the request rate either way.
    pub delete_concurrency: usize,
    /// Set to `true` to stop starting deletes: the ones in flight finish and are recorded,
    /// the rest are deferred to the next run. The daemon sets it on SIGTERM.
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
}

/// Failure that kept a run from judging the tenant at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("tenant {tenant}: {source}; {}", unreachable_hint(source))]
    Unreachable {
        tenant: String,
        #[source]
        source: IscError,
    },
    #[error("tenant {tenant}: {source}")]
    State {
        tenant: String,
        #[source]
        source: StateError,
    },
}

/// What to check when a tenant cannot be listed, by cause.
fn unreachable_hint(error: &IscError) -> &'static str {
    match error {
        IscError::Authentication { .. } => {
            "check client_id and the client secret: they must be the id and secret of the \
             auditor's personal access token"
        }
        IscError::Forbidden { .. } => {
            "the auditor's token lacks rights: it needs the scope \
             sp:all-personal-access-tokens:manage on an identity allowed to list every owner's tokens"
        }
        IscError::DeadlineExceeded => {
            "the run did not finish within run_timeout; check that api_url is reachable or raise run_timeout"
        }
        _ => "check api_url and that the tenant is reachable from this host",
    }
}

/// The exemption that decided a token's outcome, or that no longer applies.
#[derive(Debug, Clone, Serialize)]
pub struct ExemptionNote {
    pub selector: String,
    pub reason: String,
    pub until: Option<DateTime<Utc>>,
    pub expired: bool,
}

/// The decision and action of one run for one token, apart from the token itself.
#[derive(Debug, Clone)]
pub struct Decision {
    pub verdict: Action,
    pub outcome: Outcome,
    /// The names of the matching rules in file order, shared by the tokens that the same
    /// rules match.
    pub rules: Arc<[String]>,
    pub protections: Box<[Protection]>,
    /// Boxed because few tokens have one, and a large tenant keeps a decision per token.
    pub exemption: Option<Box<ExemptionNote>>,
    pub first_flagged: Option<DateTime<Utc>>,
    pub grace_until: Option<DateTime<Utc>>,
    /// The cause of a failed delete.
    pub error: Option<Box<str>>,
}

// Each decision of a run takes the memory of its assessment (see `collect_results`), so
// a decision may take no more room than an assessment.
const _: () = assert!(size_of::<Decision>() <= size_of::<Assessment>());

/// One token of a run and the decision on it. It dereferences to the decision, so
/// `result.verdict` reads the decision's field.
#[derive(Debug, Clone, Copy)]
pub struct TokenResult<'a> {
    pub token: &'a Token,
    pub decision: &'a Decision,
}

impl std::ops::Deref for TokenResult<'_> {
    type Target = Decision;

    fn deref(&self) -> &Decision {
        self.decision
    }
}

/// The tokens of a run and the decision on each, in two vectors of the same length.
/// Keeping the listing's vector as it is spares a large run a copy of every token, 28 MB
/// for 100,000 tokens.
#[derive(Debug, Clone, Default)]
pub struct TokenResults {
    tokens: Vec<Token>,
    decisions: Vec<Decision>,
}

impl TokenResults {
    /// Pairs `tokens[i]` with `decisions[i]`.
    ///
    /// # Panics
    ///
    /// When the vectors differ in length.
    pub fn new(tokens: Vec<Token>, decisions: Vec<Decision>) -> Self {
        assert_eq!(
            tokens.len(),
            decisions.len(),
            "every token has one decision"
        );
        TokenResults { tokens, decisions }
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn push(&mut self, token: Token, decision: Decision) {
        self.tokens.push(token);
        self.decisions.push(decision);
    }

    /// Returns the tokens and their decisions in listing order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.tokens.iter().zip(&self.decisions))
    }

    /// Keeps only the tokens for which `keep` returns true, with their decisions.
    pub fn retain(&mut self, mut keep: impl FnMut(TokenResult<'_>) -> bool) {
        let keep_flags: Vec<bool> = self.iter().map(&mut keep).collect();
        let mut flags = keep_flags.iter();
        self.tokens.retain(|_| *flags.next().unwrap_or(&true));
        let mut flags = keep_flags.iter();
        self.decisions.retain(|_| *flags.next().unwrap_or(&true));
    }
}

impl<'a> IntoIterator for &'a TokenResults {
    type Item = TokenResult<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The iterator of [`TokenResults::iter`].
#[derive(Debug, Clone)]
pub struct Iter<'a>(std::iter::Zip<std::slice::Iter<'a, Token>, std::slice::Iter<'a, Decision>>);

impl<'a> Iterator for Iter<'a> {
    type Item = TokenResult<'a>;

    fn next(&mut self) -> Option<TokenResult<'a>> {
        let (token, decision) = self.0.next()?;
        Some(TokenResult { token, decision })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let (token, decision) = self.0.next_back()?;
        Some(TokenResult { token, decision })
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl FromIterator<(Token, Decision)> for TokenResults {
    fn from_iter<I: IntoIterator<Item = (Token, Decision)>>(pairs: I) -> Self {
        let (tokens, decisions) = pairs.into_iter().unzip();
        TokenResults { tokens, decisions }
    }
}

/// The effective cutoff of one `last_used_older_than` rule.
#[derive(Debug, Clone, Serialize)]
pub struct Cutoff {
    pub rule: String,
    pub last_used_older_than: String,
    /// `now - last_used_older_than`: the last possible use must be before this instant.
    pub cutoff: DateTime<Utc>,
    /// For a token with the default 12 h access token validity: lastUsed must be before
    /// this instant (the cutoff minus one day of granularity and the validity).
    pub last_used_before_default_validity: DateTime<Utc>,
}

/// Facts about the listings of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ListingSummary {
    pub listed: usize,
    pub judged: usize,
    pub last_used_le: Option<DateTime<Utc>>,
    pub last_used_le_count: Option<usize>,
    pub never_used_count: Option<usize>,
    pub duplicates: usize,
    pub filter_disagreements: usize,
    pub clock_skew_seconds: Option<i64>,
    pub problem: Option<String>,
}

/// The result of one run of one tenant.
#[derive(Debug, Clone)]
pub struct Run {
    pub run_id: String,
    pub tenant: String,
    pub as_of: DateTime<Utc>,
    pub dry_run: bool,
    pub forecast: bool,
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    pub cutoffs: Vec<Cutoff>,
    pub listing: ListingSummary,
    pub breaker: Option<Breaker>,
    pub max_deletions_per_run: usize,
    pub tokens: TokenResults,
    /// Deletes of earlier runs left without a result, reconciled by this run.
    pub recovered: Vec<Recovered>,
    pub requests: RequestStats,
    /// The JSON report stored in the state directory, once written. It contains the bytes that
    /// `patrol audit --format json` prints for this run.
    pub report_file: Option<std::path::PathBuf>,
}

impl Run {
    /// Counts the run's tokens by verdict and by outcome, in one pass over them.
    pub fn tally(&self) -> Tally {
        let mut tally = Tally::default();
        for result in &self.tokens {
            tally.verdicts[result.verdict as usize] += 1;
            tally.outcomes[result.outcome as usize] += 1;
        }
        tally
    }
}

/// How many tokens of a run have each verdict and each outcome. The counts are indexed by
/// each enum's discriminant: a run of 100,000 tokens is counted once, instead of once per
/// verdict or outcome that a report or log line names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    verdicts: [usize; 3],
    outcomes: [usize; Outcome::ALL.len()],
}

impl Tally {
    pub fn verdict(&self, verdict: Action) -> usize {
        self.verdicts[verdict as usize]
    }

    pub fn outcome(&self, outcome: Outcome) -> usize {
        self.outcomes[outcome as usize]
    }
}

#[cfg(test)]
impl Run {
    /// Returns a finished run of tenant `acme` over `tokens`, evaluated at 2026-12-01, for
    /// tests of what renders or counts a run.
    pub(crate) fn example(tokens: Vec<(Token, Decision)>) -> Run {
        let as_of = DateTime::from_timestamp(1_796_083_200, 0).expect("a valid instant");
        Run {
            run_id: "run-1".to_owned(),
            tenant: "acme".to_owned(),
            as_of,
            dry_run: false,
            forecast: false,
            started_at: as_of,
            duration: Duration::from_millis(1500),
            cutoffs: Vec::new(),
            listing: ListingSummary {
                listed: tokens.len(),
                judged: tokens.len(),
                clock_skew_seconds: Some(-2),
                ..ListingSummary::default()
            },
            breaker: None,
            max_deletions_per_run: 25,
            tokens: tokens.into_iter().collect(),
            recovered: Vec::new(),
            requests: RequestStats::default(),
            report_file: None,
        }
    }
}

/// Audits one tenant once.
///
/// Every log line of the run, the client's retries included, carries the tenant's name.
pub async fn run_tenant(
    config: &Config,
    tenant: &Tenant,
    client: &Client,
    options: &RunOptions,
) -> Result<Run, RunError> {
    let span = tracing::info_span!("run", tenant = %tenant.name);
    tracing::Instrument::instrument(run_tenant_in_span(config, tenant, client, options), span).await
}

async fn run_tenant_in_span(
    config: &Config,
    tenant: &Tenant,
    client: &Client,
    options: &RunOptions,
) -> Result<Run, RunError> {
    let started = tokio::time::Instant::now();
    let started_at = Utc::now();
    let now = options.now;
    let run_id = new_run_id();
    let state_error = |source| RunError::State {
        tenant: tenant.name.clone(),
        source,
    };

    let mut state = if options.forecast {
        TenantState::read_only(&config.state_dir, &tenant.name)
    } else {
        TenantState::open(&config.state_dir, &tenant.name).map_err(state_error)?
    };
    let log = if options.forecast {
        None
    } else {
        Some(
            AuditLog::open(
                state.dir(),
                Rotation::with_max_bytes(config.audit_log_max_bytes),
            )
            .map_err(state_error)?,
        )
    };
    let mut trail = Trail::new(log, &run_id, &tenant.name);
    let dry_run = options.dry_run || options.forecast;
    trail.record(Record {
        dry_run: Some(dry_run),
        as_of: Some(now),
        ..trail.event(EventKind::RunStarted)
    });
    tracing::info!(tenant = %tenant.name, run_id = %run_id, dry_run, as_of = %now, "run started");
    let open_intents = if options.forecast {
        Vec::new()
    } else {
        crate::state::open_intents(state.dir()).map_err(state_error)?
    };

    let client = client.with_deadline(started + tenant.run_timeout);
    let mut listed = match listing::list_tenant(
        &client,
        tenant.owner_id.as_deref(),
        &config.policy,
        now,
    )
    .await
    {
        Ok(listed) => listed,
        Err(source) => {
            trail.record(Record {
                error: Some(source.to_string()),
                ..trail.event(EventKind::RunFailed)
            });
            return Err(RunError::Unreachable {
                tenant: tenant.name.clone(),
                source,
            });
        }
    };

    let (recovered, still_open) = recovery::reconcile(open_intents, &listed);
    if let Some(log) = trail.log_mut()
        && !recovered.is_empty()
    {
        recovery::record_results(log, &run_id, &tenant.name, &recovered).map_err(state_error)?;
        tracing::warn!(
            tenant = %tenant.name,
            deleted = recovered.iter().filter(|r| r.status == DeleteStatus::Deleted).count(),
            not_deleted = recovered.iter().filter(|r| r.status == DeleteStatus::NotDeleted).count(),
            "reconciled deletes that an interrupted run left without a result"
        );
    }
    if !still_open.is_empty() {
        tracing::warn!(tenant = %tenant.name, open = still_open.len(), "deletes of an interrupted run stay unreconciled until a listing shows the whole tenant");
    }

    // Judge every token and decide its outcome before the run-wide rails.
    let context = Context {
        settings: &config.safety,
        exemptions: &config.exemptions,
        client_id: &tenant.client_id,
        now,
    };
    let mut rule_names = RuleNames::new(&config.policy);
    let mut rules = Vec::with_capacity(listed.tokens.len());
    let mut judgment = Judgment {
        verdict: Action::Keep,
        rules: Vec::new(),
    };
    let mut assessments = Vec::with_capacity(listed.tokens.len());
    // The stored times are indexed by hash and looked up once per token, because each
    // search of the ordered map compares whole ids about fifteen times in a large state.
    // `stored_flags` keeps, per token, whether the state held a time for it.
    let mut stored_flags = Vec::with_capacity(listed.tokens.len());
    let mut stored_times = ids::id_map(state.first_flagged.len());
    stored_times.extend(
        state
            .first_flagged
            .iter()
            .map(|(id, first)| (id.as_str(), *first)),
    );
    let real_now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or(now);
    let judge = config.policy.at(now);
    for token in &listed.tokens {
        judge.judge_into(token, &mut judgment);
        let mut first_flagged = stored_times.get(token.id.as_str()).copied();
        stored_flags.push(first_flagged.is_some());
        // A forecast assumes a run at least daily from today on: a token that starts
        // matching a delete rule before the forecast instant is flagged when it starts.
        if options.forecast
            && now > real_now
            && first_flagged.is_none()
            && judgment.verdict == Action::Delete
        {
            first_flagged = config
                .policy
                .deleting_since(token, now)
                .map(|since| since.max(real_now));
        }
        assessments.push(safety::assess(token, &judgment, first_flagged, &context));
        rules.push(rule_names.of(&judgment.rules));
    }
    // A stored time after this run's instant counts as this run's, so such a token's grace
    // period starts anew. Forecasts evaluate other instants, where later times are normal.
    let future_flags = stored_times.values().filter(|first| **first > now).count();
    if future_flags > 0 && !options.forecast {
        tracing::warn!(
            tenant = %tenant.name,
            tokens = future_flags,
            "stored first-flagged times are later than this run's start, so the grace \
             periods of those tokens start now (check the system clock)"
        );
    }
    drop(stored_times);

    // A forecast stands for the daily runs up to its instant: each of them has its own
    // budget, and the deletion-percent breaker depends on how many tokens fall due in each
    // run, which a single evaluation cannot tell, so it is left out.
    let mut settings = config.safety.clone();
    let due = if options.forecast && now > real_now {
        let runs = (now - real_now).num_days().max(1) as usize;
        settings.max_deletions_per_run = settings.max_deletions_per_run.saturating_mul(runs);
        0
    } else {
        assessments
            .iter()
            .filter(|a| a.outcome == Outcome::Due)
            .count()
    };
    let breaker = check_breakers(
        &BreakerInputs {
            due,
            listed: listed.listed,
            clock_skew: listed.clock_skew,
            listing_problem: listed.problem.clone(),
            state_problem: state.problem.clone(),
        },
        &settings,
    );
    if let Some(breaker) = &breaker {
        tracing::error!(tenant = %tenant.name, breaker = breaker.kind(), "breaker tripped, no token is deleted in this run: {breaker}");
        trail.record(Record {
            breaker: Some(breaker.kind().to_owned()),
            message: Some(breaker.to_string()),
            ..trail.event(EventKind::BreakerTripped)
        });
    }
    let order = safety::plan(
        &listed.tokens,
        &mut assessments,
        &settings,
        dry_run,
        breaker.as_ref(),
    );

    // Record first-flagged times before any delete, so a crash cannot lose them.
    let flags = update_first_flagged(&mut state, &listed, &assessments, &stored_flags);
    let exemption_changes =
        trail::update_exemptions(&mut state, &listed, &assessments, &config.exemptions);
    if !options.forecast {
        trail::record_token_changes(
            &mut trail,
            config,
            &listed.tokens,
            &rules,
            &assessments,
            &flags,
            &exemption_changes,
        );
        trail.flush();
        state.save().map_err(state_error)?;
    }

    let mut errors: BTreeMap<usize, String> = BTreeMap::new();
    let mut unrecorded_results = 0;
    if !order.is_empty() {
        let log = trail.log_mut().expect("deletes never happen in a forecast");
        let results = delete::delete_all(
            &client,
            &listed.tokens,
            &order,
            &rules,
            log,
            &run_id,
            &tenant.name,
            options.delete_concurrency,
            options.stop.as_ref(),
        )
        .await;
        for (index, result) in results {
            if !result.recorded {
                unrecorded_results += 1;
            }
            assessments[index].outcome = result.outcome;
            if matches!(result.outcome, Outcome::Deleted | Outcome::Gone) {
                state.first_flagged.remove(&listed.tokens[index].id);
            }
            if let Some(error) = result.error {
                errors.insert(index, error);
            }
        }
        state.save().map_err(state_error)?;
    }

    // The state was saved above; its map of first-flagged times is not needed any more.
    drop(std::mem::take(&mut state.first_flagged));
    let tokens = collect_results(
        config,
        std::mem::take(&mut listed.tokens),
        rules,
        assessments,
        &mut errors,
    );
    let mut run = Run {
        run_id,
        tenant: tenant.name.clone(),
        as_of: now,
        dry_run,
        forecast: options.forecast,
        started_at,
        duration: started.elapsed(),
        cutoffs: cutoffs(config, now),
        listing: ListingSummary {
            listed: listed.listed,
            judged: tokens.len(),
            last_used_le: listed.last_used_le,
            last_used_le_count: listed.last_used_le_count,
            never_used_count: listed.never_used_count,
            duplicates: listed.duplicates,
            filter_disagreements: listed.filter_disagreements,
            clock_skew_seconds: listed.clock_skew.map(|skew| skew.num_seconds()),
            problem: listed.problem.clone(),
        },
        breaker,
        max_deletions_per_run: config.safety.max_deletions_per_run,
        tokens,
        recovered,
        requests: client.stats(),
        report_file: None,
    };

    let tally = run.tally();
    trail.record(Record {
        counts: Some(trail::run_counts(&run, &tally)),
        open_intents: Some(still_open.len() + unrecorded_results),
        breaker: run
            .breaker
            .as_ref()
            .map(|breaker| breaker.kind().to_owned()),
        dry_run: Some(run.dry_run),
        ..trail.event(EventKind::RunFinished)
    });
    trail.flush();
    if !options.forecast {
        run.report_file = trail::write_report(&state, &run);
    }
    // The log line keeps a copy of the chain's end outside the state directory (in the
    // journal, say), to compare with the last hash that `patrol verify-log` prints.
    let last_hash = trail.log_mut().map(|log| log.last_hash().to_owned());
    tracing::info!(
        tenant = %run.tenant,
        run_id = %run.run_id,
        audit_log_last_hash = %last_hash.as_deref().unwrap_or("none"),
        listed = run.listing.listed,
        report = tally.verdict(Action::Report),
        delete = tally.verdict(Action::Delete),
        grace = tally.outcome(Outcome::Grace),
        deleted = tally.outcome(Outcome::Deleted),
        gone = tally.outcome(Outcome::Gone),
        failed = tally.outcome(Outcome::Failed),
        deferred = tally.outcome(Outcome::Deferred),
        held = tally.outcome(Outcome::Held),
        duration_ms = run.duration.as_millis() as u64,
        "run finished"
    );
    Ok(run)
}

/// Keeps the first-flagged time of every token still flagged for deletion, drops the rest,
/// and returns the tokens flagged for the first time and the listed ones no longer flagged.
/// `stored[i]` is true when the state held a first-flagged time for `listed.tokens[i]`.
fn update_first_flagged(
    state: &mut TenantState,
    listed: &listing::Listed,
    assessments: &[Assessment],
    stored: &[bool],
) -> FlagChanges {
    let mut changes = FlagChanges::default();
    // The map is built at once from the gathered entries, because inserting tens of
    // thousands of ids in listing order moved the map's node contents on every insert.
    // Room for every listed token: pages no entry reaches are never touched.
    let mut flagged = Vec::with_capacity(listed.tokens.len());
    for (index, ((token, assessment), &stored)) in listed
        .tokens
        .iter()
        .zip(assessments)
        .zip(stored)
        .enumerate()
    {
        match assessment.first_flagged {
            Some(first) => {
                if !stored {
                    changes.flagged.push(index);
                }
                flagged.push((token.id.clone(), first));
            }
            None if stored => changes.cleared.push(index),
            None => {}
        }
    }
    // Tokens the listing did not show are kept only when it may have missed them.
    if !listed.complete || listed.problem.is_some() {
        let seen: std::collections::HashSet<&str> = listed
            .tokens
            .iter()
            .map(|token| token.id.as_str())
            .collect();
        for (id, first) in &state.first_flagged {
            if !seen.contains(id.as_str()) {
                flagged.push((id.clone(), *first));
            }
        }
    }
    state.first_flagged = BTreeMap::from_iter(flagged);
    changes
}

/// Pairs each token with the decision made from its assessment, in listing order.
fn collect_results(
    config: &Config,
    tokens: Vec<Token>,
    rules: Vec<Arc<[String]>>,
    assessments: Vec<Assessment>,
    errors: &mut BTreeMap<usize, String>,
) -> TokenResults {
    // Each decision takes the place of its assessment. Collecting from the assessments
    // alone lets the standard library reuse their vector, an optimization it applies when
    // the new elements fit, so 100,000 decisions need no fresh pages (about 9 MB).
    let decisions = assessments
        .into_iter()
        .enumerate()
        .map(|(index, assessment)| {
            let exemption = assessment
                .exemption
                .map(|index| (index, false))
                .or(assessment.expired_exemption.map(|index| (index, true)))
                .map(|(index, expired)| {
                    let exemption = &config.exemptions[index];
                    Box::new(ExemptionNote {
                        selector: exemption.selector(),
                        reason: exemption.reason.clone(),
                        until: exemption.until,
                        expired,
                    })
                });
            Decision {
                verdict: assessment.verdict,
                outcome: assessment.outcome,
                rules: Arc::clone(&rules[index]),
                protections: assessment.protections.into_boxed_slice(),
                exemption,
                first_flagged: assessment.first_flagged,
                grace_until: assessment.grace_until,
                error: errors.remove(&index).map(String::into_boxed_str),
            }
        })
        .collect();
    drop(rules);
    TokenResults::new(tokens, decisions)
}

/// The names of the rules of each combination of rules that matched a token, made once
/// per combination and shared by every token that combination matched. Without it, each
/// flagged token would hold its own list, about two allocations per token.
struct RuleNames<'a> {
    policy: &'a Policy,
    lists: HashMap<Vec<usize>, Arc<[String]>>,
}

impl<'a> RuleNames<'a> {
    fn new(policy: &'a Policy) -> Self {
        RuleNames {
            policy,
            lists: HashMap::new(),
        }
    }

    /// Returns the names of the rules at `indexes`, in their order.
    fn of(&mut self, indexes: &[usize]) -> Arc<[String]> {
        if let Some(list) = self.lists.get(indexes) {
            return Arc::clone(list);
        }
        let names: Arc<[String]> = indexes
            .iter()
            .map(|index| self.policy.rules[*index].name.clone())
            .collect();
        self.lists.insert(indexes.to_vec(), Arc::clone(&names));
        names
    }
}

fn cutoffs(config: &Config, now: DateTime<Utc>) -> Vec<Cutoff> {
    let default_validity = TimeDelta::seconds(i64::from(
        crate::isc::model::DEFAULT_ACCESS_TOKEN_VALIDITY_SECONDS,
    ));
    config
        .policy
        .rules
        .iter()
        .filter_map(|rule| {
            let age = rule.matchers.last_used_older_than?;
            Some(Cutoff {
                rule: rule.name.clone(),
                last_used_older_than: crate::config::duration::format_duration(age),
                cutoff: now - age,
                last_used_before_default_validity: now
                    - age
                    - LAST_USED_GRANULARITY
                    - default_validity,
            })
        })
        .collect()
}

fn new_run_id() -> String {
    format!(
        "{}-{:08x}",
        Utc::now().format("%Y%m%dT%H%M%SZ"),
        fastrand::u32(..)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(id: &str, outcome: Outcome) -> (Token, Decision) {
        let token: Token = serde_json::from_value(serde_json::json!({
            "id": id,
            "name": format!("name-{id}"),
            "owner": { "id": "o1", "name": "Owner" },
            "created": "2026-01-01T00:00:00Z",
        }))
        .unwrap();
        let decision = Decision {
            verdict: Action::Delete,
            outcome,
            rules: vec![format!("rule-{id}")].into(),
            protections: Box::default(),
            exemption: None,
            first_flagged: None,
            grace_until: None,
            error: None,
        };
        (token, decision)
    }

    #[test]
    fn results_keep_tokens_with_decisions() {
        let mut results: TokenResults = [
            pair("a", Outcome::Grace),
            pair("b", Outcome::Deleted),
            pair("c", Outcome::Grace),
        ]
        .into_iter()
        .collect();
        results.retain(|result| result.outcome == Outcome::Grace);
        let kept: Vec<(&str, &str)> = results
            .iter()
            .map(|result| (result.token.id.as_str(), result.decision.rules[0].as_str()))
            .collect();
        assert_eq!(kept, [("a", "rule-a"), ("c", "rule-c")]);
        assert_eq!(results.iter().next_back().unwrap().token.id, "c");
        assert_eq!(results.len(), 2);
    }

    #[test]
    fn tally_counts_each_verdict_and_outcome() {
        let mut tokens = vec![
            pair("a", Outcome::Grace),
            pair("b", Outcome::Deleted),
            pair("c", Outcome::Grace),
            pair("d", Outcome::None),
        ];
        tokens[3].1.verdict = Action::Keep;
        let tally = Run::example(tokens).tally();
        let verdicts =
            [Action::Keep, Action::Report, Action::Delete].map(|verdict| tally.verdict(verdict));
        assert_eq!(verdicts, [1, 0, 3]);
        let outcomes: Vec<(Outcome, usize)> = Outcome::ALL
            .into_iter()
            .map(|outcome| (outcome, tally.outcome(outcome)))
            .filter(|(_, count)| *count > 0)
            .collect();
        assert_eq!(
            outcomes,
            [
                (Outcome::None, 1),
                (Outcome::Grace, 2),
                (Outcome::Deleted, 1)
            ]
        );
    }

    #[test]
    fn judgments_by_the_same_rules_share_their_names() {
        let policy = Policy {
            rules: ["a", "b"]
                .map(|name| crate::policy::Rule {
                    name: name.to_owned(),
                    action: Action::Delete,
                    description: None,
                    matchers: crate::policy::Matchers::default(),
                })
                .to_vec(),
        };
        let mut rule_names = RuleNames::new(&policy);
        let names: Vec<Arc<[String]>> = [&[0, 1][..], &[], &[1], &[0, 1]]
            .into_iter()
            .map(|indexes| rule_names.of(indexes))
            .collect();
        let lists: Vec<&[String]> = names.iter().map(|list| &list[..]).collect();
        assert_eq!(lists, [&["a", "b"][..], &[], &["b"], &["a", "b"]]);
        assert!(Arc::ptr_eq(&names[0], &names[3]));
        assert!(!Arc::ptr_eq(&names[0], &names[2]));
    }

    #[test]
    #[should_panic(expected = "every token has one decision")]
    fn results_need_one_decision_per_token() {
        let (token, _) = pair("a", Outcome::Grace);
        TokenResults::new(vec![token], Vec::new());
    }
}
