//! Per-tenant limits: what one tenant may use of the service, so a busy tenant cannot take
//! it away from the others.
//!
//! The framework holds them because two places enforce them: the gateway (per HTTP request
//! under `/v1/`) and every worker (the quota layer of the pipeline, for clients that talk
//! to NATS directly), and a handler that calls a paid model API checks and records tokens
//! through its [`crate::Ctx`].
//!
//! - [`limits`]: [`TenantLimits`], a tenant's record, and the operator's defaults for
//!   tenants without one ([`QuotaDefaults`], from [`crate::Settings`]).
//! - [`bucket`]: [`TenantsBucket`], the KV bucket `tenants` holding the records and each
//!   tenant's LLM tokens of the day.
//! - [`window`]: counting requests per minute and actions in flight, per tenant.
//! - [`quotas`]: [`Quotas`], the handle both enforcers share: records cached for a few
//!   seconds, the counters, and the checks that answer `rate_limited` or `quota_exceeded`.
//! - [`metrics`]: per-tenant usage in `/metrics`.

pub mod bucket;
pub mod limits;
pub mod metrics;
pub mod quotas;
pub mod window;

pub use bucket::{BucketError, TenantsBucket};
pub use limits::{QuotaDefaults, TenantLimits};
pub use quotas::Quotas;
pub use window::{Admission, InFlightGuard};
