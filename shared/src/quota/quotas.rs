//! [`Quotas`]: the one handle through which the gateway, the workers and handlers read and
//! enforce a tenant's limits.
//!
//! Records are read from the `tenants` bucket and cached for [`CACHE_TTL`], so a change made
//! with `domain-actions tenants set` applies everywhere within seconds without a KV read
//! per request. When the bucket cannot be read, the defaults apply (and a warning is
//! logged): an unreachable bucket must not stop the service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use super::bucket::{BucketError, TenantsBucket};
use super::limits::{Effective, QuotaDefaults};
use super::metrics;
use super::window::{Admission, InFlightGuard, MinuteWindows, Running};
use crate::action::{ActionError, ErrorCode, TenantId};
use crate::metrics::ByTenant;

/// How long a tenant's record is used before it is read again.
pub const CACHE_TTL: Duration = Duration::from_secs(2);

/// Tenants' records cached before the cache is emptied (a bound on memory).
const CACHE_MAX: usize = 10_000;

/// A tenant's limits, counters and token accounting. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Quotas {
    inner: Arc<Inner>,
}

struct Inner {
    js: jetstream::Context,
    replicas: usize,
    defaults: QuotaDefaults,
    bucket: OnceCell<TenantsBucket>,
    cache: Mutex<HashMap<TenantId, (Arc<Effective>, Instant)>>,
    minute: MinuteWindows,
    running: Running,
    /// The handles of `da_tenant_requests_total`, by tenant and where counted.
    requests: ByTenant<Box<str>>,
}

impl Quotas {
    /// Limits read from the `tenants` bucket of `client`'s account (created with
    /// `replicas` copies when first needed), `defaults` for tenants without a record.
    pub fn new(client: async_nats::Client, defaults: QuotaDefaults, replicas: usize) -> Self {
        Self::with_jetstream(jetstream::new(client), defaults, replicas)
    }

    /// The same on a JetStream context already made (a service that holds one, not the
    /// client).
    pub fn with_jetstream(
        js: jetstream::Context,
        defaults: QuotaDefaults,
        replicas: usize,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                js,
                replicas,
                defaults,
                bucket: OnceCell::new(),
                cache: Mutex::default(),
                minute: MinuteWindows::default(),
                running: Running::default(),
                requests: ByTenant::default(),
            }),
        }
    }

    /// The bucket, opened (or created) the first time it is needed.
    pub async fn bucket(&self) -> Result<&TenantsBucket, BucketError> {
        let inner = &self.inner;
        inner
            .bucket
            .get_or_try_init(|| TenantsBucket::open(&inner.js, inner.replicas))
            .await
    }

    /// The operator's defaults.
    pub fn defaults(&self) -> &QuotaDefaults {
        &self.inner.defaults
    }

    /// The limits in force for `tenant`: its record over the defaults, at most
    /// [`CACHE_TTL`] old.
    pub async fn limits(&self, tenant: &TenantId) -> Arc<Effective> {
        let now = Instant::now();
        if let Some((limits, until)) = self.cache().get(tenant)
            && *until > now
        {
            return limits.clone();
        }
        // Boxed: the read is rare (once per tenant per [`CACHE_TTL`]), and its future is
        // large; held inline it would grow the future of every action that checks a limit.
        Box::pin(self.read_limits(tenant, now)).await
    }

    /// Reads `tenant`'s record from the bucket and caches its limits from `now`.
    async fn read_limits(&self, tenant: &TenantId, now: Instant) -> Arc<Effective> {
        let record = match self.bucket().await {
            Ok(bucket) => bucket.limits(tenant).await,
            Err(err) => Err(err),
        };
        let record = record.unwrap_or_else(|err| {
            tracing::warn!(%err, tenant = %tenant.as_str(), "tenant limits unreadable; the defaults apply");
            None
        });
        let limits = Arc::new(record.unwrap_or_default().over(&self.inner.defaults));
        let mut cache = self.cache();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(tenant.clone(), (limits.clone(), now + CACHE_TTL));
        limits
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, (Arc<Effective>, Instant)>> {
        self.inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one request of `tenant` seen `at` (`gateway`, or a worker's domain) against
    /// its requests per minute. `None`: the tenant has no such limit. A refused request is
    /// counted in `/metrics` too.
    pub async fn admit(&self, tenant: &TenantId, at: &str) -> Option<Admission> {
        let limits = self.limits(tenant).await;
        self.admit_within(&limits, tenant, at)
    }

    /// [`Quotas::admit`] with the tenant's limits already read (a caller that checks several
    /// of them reads them once).
    pub fn admit_within(
        &self,
        limits: &Effective,
        tenant: &TenantId,
        at: &str,
    ) -> Option<Admission> {
        metrics::requested(&self.inner.requests, tenant, at);
        let limit = limits.requests_per_minute;
        if limit == 0 {
            return None;
        }
        let admission = self.inner.minute.admit(tenant, limit);
        if !admission.allowed {
            metrics::refused(tenant, at, ErrorCode::RateLimited.as_str());
        }
        Some(admission)
    }

    /// Takes one of `tenant`'s concurrent-action slots under its `limits`, or says it is
    /// over its limit (`rate_limited`); `Ok(None)`: no such limit.
    pub fn enter(
        &self,
        limits: &Effective,
        tenant: &TenantId,
        at: &str,
    ) -> Result<Option<InFlightGuard>, ActionError> {
        let limit = limits.concurrent;
        if limit == 0 {
            return Ok(None);
        }
        match self.inner.running.enter(tenant, limit) {
            Some(guard) => Ok(Some(guard)),
            None => {
                metrics::refused(tenant, at, ErrorCode::RateLimited.as_str());
                Err(ActionError::rate_limited(
                    format!(
                        "tenant {} already has {limit} actions in flight, its limit",
                        tenant.as_str()
                    ),
                    RETRY_BUSY,
                ))
            }
        }
    }

    /// Checks, before a paid model API is called for `tenant`, that the action may name
    /// `model` (`forbidden` if not) and that the tenant has tokens left today
    /// (`quota_exceeded` if not, with the time until the UTC day ends).
    pub async fn check_llm(
        &self,
        tenant: &TenantId,
        model: Option<&str>,
        at: &str,
    ) -> Result<(), ActionError> {
        self.check_model(tenant, model, at).await?;
        let limits = self.limits(tenant).await;
        if limits.tokens_per_day == 0 {
            return Ok(());
        }
        let used = match self.bucket().await {
            Ok(bucket) => bucket.tokens_today(tenant).await,
            Err(err) => Err(err),
        }
        .map_err(|err| ActionError::unavailable(err.to_string()))?;
        if used >= limits.tokens_per_day {
            metrics::refused(tenant, at, ErrorCode::QuotaExceeded.as_str());
            return Err(ActionError::quota_exceeded(
                format!(
                    "tenant {} has used {used} of its {} LLM tokens today (UTC)",
                    tenant.as_str(),
                    limits.tokens_per_day
                ),
                until_tomorrow(OffsetDateTime::now_utc()),
            ));
        }
        Ok(())
    }

    /// Checks, before a paid model API other than a chat model's is called for `tenant`
    /// (an embedding API), that the action may name `model` (`forbidden` if not). Its
    /// tokens are not held against the tenant's LLM tokens of the day.
    pub async fn check_model(
        &self,
        tenant: &TenantId,
        model: Option<&str>,
        at: &str,
    ) -> Result<(), ActionError> {
        let limits = self.limits(tenant).await;
        match model {
            Some(model) if !limits.allows_model(model) => {
                metrics::refused(tenant, at, ErrorCode::Forbidden.as_str());
                Err(ActionError::new(
                    ErrorCode::Forbidden,
                    format!(
                        "model {model:?} is not allowed for tenant {}; allowed: {}",
                        tenant.as_str(),
                        limits.models.join(", ")
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Adds the `tokens` a model API reported for `tenant`'s action to its day's count
    /// (and to `/metrics`). A failure to store it is logged, not returned: the answer was
    /// paid for and is the caller's.
    pub async fn record_tokens(&self, tenant: &TenantId, tokens: u64) {
        if tokens == 0 {
            return;
        }
        metrics::tokens_used(tenant, tokens);
        let added = match self.bucket().await {
            Ok(bucket) => bucket.add_tokens(tenant, tokens).await,
            Err(err) => Err(err),
        };
        if let Err(err) = added {
            tracing::warn!(%err, tenant = %tenant.as_str(), tokens, "LLM tokens not recorded");
        }
    }
}

impl Quotas {
    /// `tenant`'s stored bytes now and its limit (0: none).
    pub async fn stored(&self, tenant: &TenantId) -> Result<(u64, u64), ActionError> {
        let limit = self.limits(tenant).await.stored_bytes;
        let used = match self.bucket().await {
            Ok(bucket) => bucket.stored_bytes(tenant).await,
            Err(err) => Err(err),
        }
        .map_err(|err| ActionError::unavailable(err.to_string()))?;
        Ok((used, limit))
    }

    /// Counts `bytes` more of `tenant`'s originals as stored, before they are stored for
    /// good; refused (`quota_exceeded`, nothing counted) when that would take the tenant
    /// past its `stored_bytes`. Counted even without a limit, so one set later holds
    /// against what is already stored. Give the bytes back with [`Quotas::release_stored`]
    /// if they end up not stored.
    pub async fn reserve_stored(
        &self,
        tenant: &TenantId,
        bytes: u64,
        at: &str,
    ) -> Result<(), ActionError> {
        if bytes == 0 {
            return Ok(());
        }
        let limit = self.limits(tenant).await.stored_bytes;
        let delta = i64::try_from(bytes).unwrap_or(i64::MAX);
        let changed = match self.bucket().await {
            Ok(bucket) => bucket.change_stored(tenant, delta, limit).await,
            Err(err) => Err(err),
        }
        .map_err(|err| ActionError::unavailable(err.to_string()))?;
        let stored = changed.map_err(|used| self.refuse_stored(tenant, used, limit, bytes, at))?;
        metrics::stored_bytes(tenant, stored);
        Ok(())
    }

    /// The refusal of `more` bytes for `tenant`, which stores `used` of its `limit`
    /// (counted in `/metrics` at `at`): `quota_exceeded` without `retry_after_ms`, since
    /// waiting frees nothing (deleting documents does), which HTTP answers 507.
    pub fn refuse_stored(
        &self,
        tenant: &TenantId,
        used: u64,
        limit: u64,
        more: u64,
        at: &str,
    ) -> ActionError {
        metrics::refused(tenant, at, ErrorCode::QuotaExceeded.as_str());
        ActionError::new(
            ErrorCode::QuotaExceeded,
            format!(
                "tenant {} stores {used} bytes of documents and its limit is {limit}: {more} \
                 bytes more would exceed it; delete documents to free space",
                tenant.as_str()
            ),
        )
    }

    /// Counts `bytes` of `tenant`'s originals as no longer stored (deleted, or reserved and
    /// then not stored). A failure is logged, not returned: what it follows is done.
    pub async fn release_stored(&self, tenant: &TenantId, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let delta = -i64::try_from(bytes).unwrap_or(i64::MAX);
        let changed = match self.bucket().await {
            Ok(bucket) => bucket.change_stored(tenant, delta, 0).await,
            Err(err) => Err(err),
        };
        match changed {
            Ok(Ok(stored) | Err(stored)) => metrics::stored_bytes(tenant, stored),
            Err(err) => {
                tracing::warn!(%err, tenant = %tenant.as_str(), bytes, "stored bytes not given back")
            }
        }
    }
}

/// What a tenant over its concurrent actions is told to wait: a slot frees as soon as one
/// of its actions finishes, so a short pause.
pub const RETRY_BUSY: Duration = Duration::from_secs(1);

/// The error for a request refused by its tenant's minute window.
pub fn over_rate(tenant: &TenantId, admission: &Admission) -> ActionError {
    ActionError::rate_limited(
        format!(
            "tenant {} is over its limit of {} requests per minute",
            tenant.as_str(),
            admission.limit
        ),
        admission.reset,
    )
}

/// From `now` to the next UTC midnight.
fn until_tomorrow(now: OffsetDateTime) -> Duration {
    let midnight = now
        .date()
        .next_day()
        .map(|day| day.midnight().assume_utc())
        .unwrap_or(now);
    Duration::try_from(midnight - now).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_ends_at_utc_midnight() {
        let now = time::macros::datetime!(2025-03-07 23:00 UTC);
        assert_eq!(until_tomorrow(now), Duration::from_secs(3600));
    }

    #[tokio::test]
    async fn tokens_are_refused_once_the_day_is_used_and_models_checked_first() {
        let server = testkit::TestServer::start().await;
        let quotas = Quotas::new(server.client().await, QuotaDefaults::default(), 1);
        let acme = TenantId::new("acme").expect("tenant");
        quotas
            .check_llm(&acme, Some("any"), "test")
            .await
            .expect("no limits");
        let limits = super::super::TenantLimits {
            tokens_per_day: Some(10),
            models: vec!["small".into()],
            ..Default::default()
        };
        let bucket = quotas.bucket().await.expect("bucket");
        bucket.set_limits(&acme, &limits).await.expect("set");
        let fresh = Quotas::new(server.client().await, QuotaDefaults::default(), 1);
        let error = fresh
            .check_llm(&acme, Some("big"), "test")
            .await
            .expect_err("model");
        assert_eq!(error.code, ErrorCode::Forbidden);
        fresh
            .check_llm(&acme, Some("small"), "test")
            .await
            .expect("tokens left");
        fresh.record_tokens(&acme, 12).await;
        let error = fresh
            .check_llm(&acme, None, "test")
            .await
            .expect_err("used up");
        assert_eq!(error.code, ErrorCode::QuotaExceeded);
        assert!(error.retry_after_ms.is_some(), "{error:?}");
    }
}
