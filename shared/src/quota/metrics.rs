//! Per-tenant usage in `/metrics` (recorded through the `metrics` facade, like the worker
//! metrics; a no-op until a process installs a recorder).
//!
//! | metric | type | labels | counts |
//! |---|---|---|---|
//! | `da_tenant_requests_total` | counter | `tenant`, `at` | requests counted against the tenant's per-minute limit, refused ones included |
//! | `da_tenant_rate_limited_total` | counter | `tenant`, `at`, `code` | requests and actions refused for a limit (`rate_limited`, `quota_exceeded`, `forbidden` model) |
//! | `da_tenant_tokens_total` | counter | `tenant` | LLM tokens the APIs reported for the tenant's actions |
//! | `da_tenant_stored_bytes` | gauge | `tenant` | bytes of documents the tenant stores, as of the last change this process made (the count itself is in the `tenants` KV bucket, shared by every instance) |
//!
//! `at` is where it was counted: `gateway`, or the domain of the worker.

use crate::action::TenantId;
use crate::metrics::ByTenant;

/// Requests counted against a tenant's per-minute limit, by tenant and where.
pub const TENANT_REQUESTS: &str = "da_tenant_requests_total";
/// Requests and actions refused for one of the tenant's limits, by tenant, where and code.
pub const TENANT_RATE_LIMITED: &str = "da_tenant_rate_limited_total";
/// LLM tokens reported by the model APIs, by tenant.
pub const TENANT_TOKENS: &str = "da_tenant_tokens_total";
/// Bytes of documents a tenant stores, by tenant.
pub const TENANT_STORED_BYTES: &str = "da_tenant_stored_bytes";

/// Counts one request of `tenant` seen `at` a gateway or a worker's domain; the handles
/// are kept in `kept`, since this runs for every request.
pub fn requested(kept: &ByTenant<Box<str>>, tenant: &TenantId, at: &str) {
    kept.increment_matching(tenant, |kept_at| **kept_at == *at, 1, || {
        let counter = ::metrics::counter!(TENANT_REQUESTS, "tenant" => tenant.as_str().to_owned(), "at" => at.to_owned());
        (Box::from(at), counter)
    });
}

/// Counts one refusal of `tenant`'s request `at` a gateway or a worker, with its code.
pub fn refused(tenant: &TenantId, at: &str, code: &str) {
    ::metrics::counter!(
        TENANT_RATE_LIMITED,
        "tenant" => tenant.as_str().to_owned(),
        "at" => at.to_owned(),
        "code" => code.to_owned()
    )
    .increment(1);
}

/// Adds `tokens` to what `tenant` used.
pub fn tokens_used(tenant: &TenantId, tokens: u64) {
    ::metrics::counter!(TENANT_TOKENS, "tenant" => tenant.as_str().to_owned()).increment(tokens);
}

/// Shows `bytes` as what `tenant` stores now.
pub fn stored_bytes(tenant: &TenantId, bytes: u64) {
    ::metrics::gauge!(TENANT_STORED_BYTES, "tenant" => tenant.as_str().to_owned())
        .set(bytes as f64);
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    #[test]
    fn usage_is_recorded_per_tenant() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let acme = TenantId::new("acme").expect("tenant");
        ::metrics::with_local_recorder(&recorder, || {
            tokens_used(&acme, 120);
            stored_bytes(&acme, 60_000);
            stored_bytes(&acme, 50_000);
        });
        let seen: Vec<_> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| (key.key().name().to_owned(), value))
            .collect();
        assert!(seen.contains(&(TENANT_TOKENS.to_owned(), DebugValue::Counter(120))));
        assert!(seen.contains(&(
            TENANT_STORED_BYTES.to_owned(),
            DebugValue::Gauge(50_000.0.into())
        )));
    }
}
