//! The access token cache of one client: OAuth 2 client credentials, minted on demand and
//! shared by every clone of the client.
//!
//! - A token is reused until shortly before `expires_in` runs out: the margin is
//!   [`refresh_margin`], 60 seconds or a tenth of the lifetime, whichever is shorter.
//! - After a 401 on an API call the caller invalidates the token it sent, and the next call
//!   mints a new one. Invalidation names the rejected token, so that concurrent 401s with the
//!   same token cause one mint, not one each.
//! - One mint at a time: callers that find the cache empty or stale queue on one lock, and
//!   those that queued while a mint ran take its result, a token or the same error. A mint
//!   cut off by its caller's deadline is not shared, so the next caller mints again.
//!
//! The HTTP request of a mint (pacing, retries, status mapping) belongs to the client; this
//! module stores its result and parses the token response.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::time::Instant;

use super::IscError;

/// Maximum margin by which a token is renewed before it expires.
pub const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Returns how long before expiry a token of the given lifetime is renewed:
/// `min(60 s, lifetime / 10)`, so short-lived tokens are still used for most of their life.
pub(crate) fn refresh_margin(lifetime: Duration) -> Duration {
    MAX_REFRESH_MARGIN.min(lifetime / 10)
}

/// An access token and the instant from which it should no longer be used.
pub(crate) struct CachedToken {
    pub value: SecretString,
    /// `None` when the token response stated no lifetime; the token is then kept until a
    /// 401 rejects it.
    pub renew_at: Option<Instant>,
}

impl CachedToken {
    fn is_fresh(&self, now: Instant) -> bool {
        self.renew_at.is_none_or(|renew_at| now < renew_at)
    }
}

/// The fields of a token response the client uses.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Parses a successful token response. `requested_at` is an instant before the request was
/// sent, so the computed expiry is never later than the service's.
///
/// The error message never quotes the body, because the body contains the access token.
pub(crate) fn parse_token_response(
    status: u16,
    body: &[u8],
    requested_at: Instant,
) -> Result<CachedToken, IscError> {
    let response: TokenResponse = serde_json::from_slice(body).map_err(|err| IscError::Decode {
        status,
        message: format!(
            "the token response is not a JSON object with a string access_token and a \
             numeric expires_in ({:?} error at line {}, column {})",
            err.classify(),
            err.line(),
            err.column()
        ),
    })?;

    if response.access_token.trim().is_empty() {
        return Err(IscError::Authentication {
            status,
            tracking_id: None,
            message: "the token response has an empty access_token".to_owned(),
        });
    }

    // NOTE: the API documents `expires_in` in every token response. Without it (or with a
    // lifetime too long to represent) the token is kept until a 401, which costs one
    // rejected request per expiry.
    let renew_at = response.expires_in.and_then(|seconds| {
        let lifetime = Duration::from_secs(seconds);
        requested_at.checked_add(lifetime - refresh_margin(lifetime))
    });
    Ok(CachedToken {
        value: SecretString::from(response.access_token),
        renew_at,
    })
}

/// The shared token cache.
#[derive(Default)]
pub(crate) struct TokenCache {
    state: tokio::sync::Mutex<CacheState>,
    /// Number of mints that finished, successfully or not; readable without the lock.
    finished_mints: AtomicU64,
}

#[derive(Default)]
struct CacheState {
    current: Option<CachedToken>,
    /// Error of the most recent mint, when it failed.
    last_failure: Option<IscError>,
}

impl TokenCache {
    /// Returns a fresh access token, running `mint` when there is none. Waits at most until
    /// `deadline` for another caller's mint.
    pub async fn get_or_mint<F, Fut>(
        &self,
        deadline: Option<Instant>,
        mint: F,
    ) -> Result<SecretString, IscError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CachedToken, IscError>>,
    {
        let seen_mints = self.finished_mints.load(Ordering::Acquire);
        let mut state = self.lock(deadline).await?;

        if let Some(token) = state
            .current
            .as_ref()
            .filter(|token| token.is_fresh(Instant::now()))
        {
            return Ok(token.value.clone());
        }
        // A mint finished while this caller queued for the lock: share its failure instead
        // of sending the same failing request again.
        let mint_finished_meanwhile = self.finished_mints.load(Ordering::Acquire) != seen_mints;
        if let Some(failure) = state
            .last_failure
            .as_ref()
            .filter(|_| mint_finished_meanwhile)
        {
            return Err(failure.clone());
        }

        let result = mint().await;
        match result {
            Ok(token) => {
                let value = token.value.clone();
                state.current = Some(token);
                state.last_failure = None;
                self.finished_mints.fetch_add(1, Ordering::Release);
                Ok(value)
            }
            Err(IscError::DeadlineExceeded) => Err(IscError::DeadlineExceeded),
            Err(err) => {
                state.current = None;
                state.last_failure = Some(err.clone());
                self.finished_mints.fetch_add(1, Ordering::Release);
                Err(err)
            }
        }
    }

    /// Drops the cached token if it is `rejected`, so that the next caller mints a new one.
    /// Waits at most until `deadline` for a mint in progress.
    pub async fn invalidate(
        &self,
        rejected: &SecretString,
        deadline: Option<Instant>,
    ) -> Result<(), IscError> {
        let mut state = self.lock(deadline).await?;
        let is_rejected = state
            .current
            .as_ref()
            .is_some_and(|token| token.value.expose_secret() == rejected.expose_secret());
        if is_rejected {
            state.current = None;
        }
        Ok(())
    }

    async fn lock(
        &self,
        deadline: Option<Instant>,
    ) -> Result<tokio::sync::MutexGuard<'_, CacheState>, IscError> {
        match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, self.state.lock())
                .await
                .map_err(|_| IscError::DeadlineExceeded),
            None => Ok(self.state.lock().await),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn token(value: &str, renew_at: Option<Instant>) -> CachedToken {
        CachedToken {
            value: SecretString::from(value.to_owned()),
            renew_at,
        }
    }

    #[test]
    fn refresh_margin_caps_at_one_minute() {
        assert_eq!(
            refresh_margin(Duration::from_secs(749)),
            Duration::from_secs(60)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(43_200)),
            Duration::from_secs(60)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(300)),
            Duration::from_secs(30)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(15)),
            Duration::from_millis(1_500)
        );
        assert_eq!(refresh_margin(Duration::ZERO), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn token_response_sets_renewal_before_expiry() {
        let now = Instant::now();
        let parsed = parse_token_response(
            200,
            br#"{"access_token":"eyJ.abc","token_type":"bearer","expires_in":749,"jti":"x"}"#,
            now,
        )
        .unwrap();
        assert_eq!(parsed.value.expose_secret(), "eyJ.abc");
        assert_eq!(parsed.renew_at, Some(now + Duration::from_secs(689)));
    }

    #[tokio::test(start_paused = true)]
    async fn token_response_errors_never_quote_the_body() {
        let now = Instant::now();
        let err = parse_token_response(
            200,
            br#"{"access_token":"eyJ.secret","expires_in":"soon"}"#,
            now,
        )
        .err()
        .unwrap();
        assert!(
            matches!(err, IscError::Decode { status: 200, .. }),
            "{err:?}"
        );
        assert!(!err.to_string().contains("eyJ.secret"), "{err}");
        assert!(!err.to_string().contains("soon"), "{err}");

        let err = parse_token_response(200, br#"{"access_token":" ","expires_in":10}"#, now)
            .err()
            .unwrap();
        assert!(matches!(err, IscError::Authentication { .. }), "{err:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn cache_reuses_fresh_token_and_renews_stale_one() {
        let cache = TokenCache::default();
        let mints = AtomicUsize::new(0);
        let mint = |value: &'static str| {
            mints.fetch_add(1, Ordering::SeqCst);
            let renew_at = Instant::now() + Duration::from_secs(100);
            async move { Ok(token(value, Some(renew_at))) }
        };

        let first = cache.get_or_mint(None, || mint("one")).await.unwrap();
        let again = cache.get_or_mint(None, || mint("two")).await.unwrap();
        assert_eq!(first.expose_secret(), "one");
        assert_eq!(again.expose_secret(), "one");

        tokio::time::advance(Duration::from_secs(100)).await;
        let renewed = cache.get_or_mint(None, || mint("three")).await.unwrap();
        assert_eq!(renewed.expose_secret(), "three");
        assert_eq!(mints.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn cache_invalidates_only_the_rejected_token() {
        let cache = TokenCache::default();
        cache
            .get_or_mint(None, || async { Ok(token("current", None)) })
            .await
            .unwrap();

        cache
            .invalidate(&SecretString::from("older"), None)
            .await
            .unwrap();
        let unchanged = cache
            .get_or_mint(None, || async { Ok(token("unexpected", None)) })
            .await
            .unwrap();
        assert_eq!(unchanged.expose_secret(), "current");

        cache
            .invalidate(&SecretString::from("current"), None)
            .await
            .unwrap();
        let renewed = cache
            .get_or_mint(None, || async { Ok(token("renewed", None)) })
            .await
            .unwrap();
        assert_eq!(renewed.expose_secret(), "renewed");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_mint_and_its_failure() {
        let cache = Arc::new(TokenCache::default());
        let mints = Arc::new(AtomicUsize::new(0));

        let mut tasks = Vec::new();
        for _ in 0..10 {
            let cache = Arc::clone(&cache);
            let mints = Arc::clone(&mints);
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_mint(None, || async move {
                        mints.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        Err::<CachedToken, _>(IscError::Authentication {
                            status: 401,
                            tracking_id: None,
                            message: "bad credentials".to_owned(),
                        })
                    })
                    .await
            }));
        }
        for task in tasks {
            let result = task.await.unwrap();
            assert!(matches!(result, Err(IscError::Authentication { .. })));
        }
        assert_eq!(mints.load(Ordering::SeqCst), 1);

        // A caller arriving after the failure tries again.
        let token = cache
            .get_or_mint(None, || async { Ok(token("fresh", None)) })
            .await
            .unwrap();
        assert_eq!(token.expose_secret(), "fresh");
    }
}
