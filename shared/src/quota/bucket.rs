//! [`TenantsBucket`]: the JetStream KV bucket `tenants`, in the services' account (tenant
//! accounts import no `$KV` subject, so no tenant can read or change its own limits).
//!
//! | key | value |
//! |---|---|
//! | `limits.<tenant>` | the tenant's [`TenantLimits`] as JSON |
//! | `tokens.<tenant>.<YYYY-MM-DD>` | LLM tokens the tenant used that UTC day, a JSON number |
//! | `stored.<tenant>` | bytes of the tenant's document originals in the store, a JSON number |
//!
//! Counts are changed with compare-and-set, so every instance of every service adds to
//! the same count; a day's key is never read after that day.

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use time::OffsetDateTime;

use super::limits::TenantLimits;
use crate::action::TenantId;

/// The bucket's name.
pub const BUCKET: &str = "tenants";

/// Why the bucket could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    /// NATS failed (worth trying again).
    #[error("tenants bucket: {0}")]
    Nats(String),
    /// A stored value is not what this version writes.
    #[error("tenants bucket, key {key}: unreadable value: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
}

fn nats(err: impl std::fmt::Display) -> BucketError {
    BucketError::Nats(err.to_string())
}

/// The `tenants` KV bucket: limits records and token counts.
#[derive(Clone)]
pub struct TenantsBucket {
    store: kv::Store,
}

impl TenantsBucket {
    /// Opens the bucket, creating it (history 1, file storage, `replicas` copies) if it
    /// does not exist yet.
    pub async fn open(js: &jetstream::Context, replicas: usize) -> Result<Self, BucketError> {
        let store = match js.get_key_value(BUCKET).await {
            Ok(store) => store,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: BUCKET.to_owned(),
                    description: "Domain Actions: per-tenant limits and LLM token usage".into(),
                    history: 1,
                    storage: jetstream::stream::StorageType::File,
                    num_replicas: replicas.max(1),
                    ..Default::default()
                })
                .await
                .map_err(nats)?,
        };
        Ok(Self { store })
    }

    /// The record of `tenant`, if it has one.
    pub async fn limits(&self, tenant: &TenantId) -> Result<Option<TenantLimits>, BucketError> {
        let key = limits_key(tenant);
        match self.live(&key).await? {
            Some((bytes, _)) => decode(&key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Writes the record of `tenant`, replacing any.
    pub async fn set_limits(
        &self,
        tenant: &TenantId,
        limits: &TenantLimits,
    ) -> Result<(), BucketError> {
        let json = serde_json::to_vec(limits).map_err(nats)?;
        self.store
            .put(limits_key(tenant), json.into())
            .await
            .map_err(nats)?;
        Ok(())
    }

    /// Every tenant with a record, in name order.
    pub async fn list(&self) -> Result<Vec<(TenantId, TenantLimits)>, BucketError> {
        let mut keys = self.store.keys().await.map_err(nats)?;
        let mut tenants = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(nats)?;
            let Some(tenant) = key.strip_prefix("limits.") else {
                continue;
            };
            let Ok(tenant) = TenantId::new(tenant) else {
                continue;
            };
            if let Some(limits) = self.limits(&tenant).await? {
                tenants.push((tenant, limits));
            }
        }
        tenants.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(tenants)
    }

    /// LLM tokens `tenant` used today (UTC).
    pub async fn tokens_today(&self, tenant: &TenantId) -> Result<u64, BucketError> {
        let key = tokens_key(tenant, OffsetDateTime::now_utc());
        match self.live(&key).await? {
            Some((bytes, _)) => decode(&key, &bytes),
            None => Ok(0),
        }
    }

    /// Adds `tokens` to what `tenant` used today; the new total. Compare-and-set, retried
    /// when another writer got there first, so concurrent additions are never lost.
    pub async fn add_tokens(&self, tenant: &TenantId, tokens: u64) -> Result<u64, BucketError> {
        let key = tokens_key(tenant, OffsetDateTime::now_utc());
        let changed = self
            .change_count(&key, |total| Some(total.saturating_add(tokens)))
            .await?;
        Ok(changed.unwrap_or_else(|total| total))
    }

    /// Bytes of `tenant`'s originals in the documents store, as counted.
    pub async fn stored_bytes(&self, tenant: &TenantId) -> Result<u64, BucketError> {
        let key = stored_key(tenant);
        match self.live(&key).await? {
            Some((bytes, _)) => decode(&key, &bytes),
            None => Ok(0),
        }
    }

    /// Changes `tenant`'s stored bytes by `delta`: `Ok(total)` the new count, or, for an
    /// addition that would take it past `limit` (0: no limit), `Err(count)` with nothing
    /// changed. The count never goes below zero. Compare-and-set, retried when another
    /// writer got there first, so concurrent changes are never lost and two additions
    /// cannot both pass the limit.
    pub async fn change_stored(
        &self,
        tenant: &TenantId,
        delta: i64,
        limit: u64,
    ) -> Result<Result<u64, u64>, BucketError> {
        self.change_count(&stored_key(tenant), |total| {
            let new = total.saturating_add_signed(delta);
            (delta <= 0 || limit == 0 || new <= limit).then_some(new)
        })
        .await
    }

    /// Replaces the number at `key` (0 when absent) with what `change` makes of it, by
    /// compare-and-set until no other writer came between: `Ok(new)`, or `Err(current)`
    /// when `change` refused (`None`), nothing written.
    async fn change_count(
        &self,
        key: &str,
        change: impl Fn(u64) -> Option<u64>,
    ) -> Result<Result<u64, u64>, BucketError> {
        loop {
            let current = self.live(key).await?;
            let (total, revision) = match &current {
                Some((bytes, revision)) => (decode::<u64>(key, bytes)?, Some(*revision)),
                None => (0, None),
            };
            let Some(new) = change(total) else {
                return Ok(Err(total));
            };
            let value = serde_json::to_vec(&new).map_err(nats)?;
            let written =
                match revision {
                    None => self.store.create(key, value.into()).await.map_err(|err| {
                        (err.kind() == kv::CreateErrorKind::AlreadyExists, nats(err))
                    }),
                    Some(revision) => self
                        .store
                        .update(key, value.into(), revision)
                        .await
                        .map_err(|err| {
                            (
                                err.kind() == kv::UpdateErrorKind::WrongLastRevision,
                                nats(err),
                            )
                        }),
                };
            match written {
                Ok(_) => return Ok(Ok(new)),
                Err((true, _)) => continue,
                Err((false, err)) => return Err(err),
            }
        }
    }

    /// The value at `key` and its revision, if it holds one (not deleted).
    async fn live(&self, key: &str) -> Result<Option<(bytes::Bytes, u64)>, BucketError> {
        let entry = self.store.entry(key).await.map_err(nats)?;
        Ok(entry
            .filter(|entry| entry.operation == kv::Operation::Put)
            .map(|entry| (entry.value, entry.revision)))
    }
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, BucketError> {
    serde_json::from_slice(bytes).map_err(|err| BucketError::Corrupt {
        key: key.to_owned(),
        reason: err.to_string(),
    })
}

fn limits_key(tenant: &TenantId) -> String {
    format!("limits.{tenant}", tenant = tenant.as_str())
}

/// The key of `tenant`'s stored bytes.
fn stored_key(tenant: &TenantId) -> String {
    format!("stored.{}", tenant.as_str())
}

/// The key of `tenant`'s tokens on the UTC day of `now`.
fn tokens_key(tenant: &TenantId, now: OffsetDateTime) -> String {
    let date = now.date();
    format!(
        "tokens.{}.{:04}-{:02}-{:02}",
        tenant.as_str(),
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_per_tenant_and_day() {
        let tenant = TenantId::new("acme").expect("tenant");
        assert_eq!(limits_key(&tenant), "limits.acme");
        let day = time::macros::datetime!(2025-03-07 23:59 UTC);
        assert_eq!(tokens_key(&tenant, day), "tokens.acme.2025-03-07");
    }

    #[tokio::test]
    async fn records_and_tokens_round_trip_on_a_real_server() {
        let server = testkit::TestServer::start().await;
        let js = jetstream::new(server.client().await);
        let bucket = TenantsBucket::open(&js, 1).await.expect("open");
        let acme = TenantId::new("acme").expect("tenant");
        assert_eq!(bucket.limits(&acme).await.expect("read"), None);
        let limits = TenantLimits {
            requests_per_minute: Some(3),
            models: vec!["m".into()],
            ..TenantLimits::default()
        };
        bucket.set_limits(&acme, &limits).await.expect("set");
        assert_eq!(
            bucket.limits(&acme).await.expect("read"),
            Some(limits.clone())
        );
        assert_eq!(
            bucket.list().await.expect("list"),
            vec![(acme.clone(), limits)]
        );
        assert_eq!(bucket.add_tokens(&acme, 5).await.expect("add"), 5);
        assert_eq!(bucket.add_tokens(&acme, 7).await.expect("add"), 12);
        assert_eq!(bucket.tokens_today(&acme).await.expect("read"), 12);
        let other = TenantId::new("globex").expect("tenant");
        assert_eq!(bucket.tokens_today(&other).await.expect("read"), 0);
    }

    #[tokio::test]
    async fn stored_bytes_stay_within_the_limit_never_below_zero_and_add_up_concurrently() {
        let server = testkit::TestServer::start().await;
        let js = jetstream::new(server.client().await);
        let bucket = TenantsBucket::open(&js, 1).await.expect("open");
        let acme = TenantId::new("acme").expect("tenant");
        assert_eq!(stored_key(&acme), "stored.acme");
        assert_eq!(bucket.stored_bytes(&acme).await.expect("read"), 0);
        assert_eq!(
            bucket.change_stored(&acme, 60, 100).await.expect("add"),
            Ok(60)
        );
        assert_eq!(
            bucket.change_stored(&acme, 41, 100).await.expect("add"),
            Err(60),
            "past the limit: refused, nothing changed"
        );
        assert_eq!(
            bucket.change_stored(&acme, 40, 100).await.expect("add"),
            Ok(100)
        );
        assert_eq!(
            bucket.change_stored(&acme, -30, 100).await.expect("sub"),
            Ok(70)
        );
        assert_eq!(
            bucket.change_stored(&acme, -500, 100).await.expect("sub"),
            Ok(0),
            "never below zero"
        );
        // Over a limit set later, a subtraction still goes through.
        bucket
            .change_stored(&acme, 90, 0)
            .await
            .expect("add")
            .expect("no limit");
        assert_eq!(
            bucket.change_stored(&acme, -10, 50).await.expect("sub"),
            Ok(80)
        );
        let adds = (0..8).map(|_| {
            let bucket = bucket.clone();
            let acme = acme.clone();
            tokio::spawn(async move { bucket.change_stored(&acme, 5, 0).await })
        });
        for add in futures::future::join_all(adds).await {
            add.expect("task").expect("add").expect("no limit");
        }
        assert_eq!(bucket.stored_bytes(&acme).await.expect("read"), 120);
    }
}
