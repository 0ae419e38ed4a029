//! [`TenantLimits`]: what one tenant may use, and [`QuotaDefaults`] for tenants without a
//! record. Zero means "no limit" everywhere, so a fresh installation behaves as before
//! until the operator sets limits.

use serde::{Deserialize, Serialize};

use crate::settings::{Settings, SettingsError};

/// One tenant's limits, as stored in the `tenants` bucket (`domain-actions tenants set`).
/// A field left out (or zero) falls back to the operator's default for it, so a record
/// only says how this tenant differs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantLimits {
    /// Requests (HTTP requests under `/v1/`, or actions a worker receives) per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// Actions of the tenant being handled at once on one worker's rpc path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent: Option<u32>,
    /// LLM tokens (prompt and completion, as the API reports them) per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<u64>,
    /// Bytes of document originals the tenant may keep in the documents store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_bytes: Option<u64>,
    /// Models an action may name; empty: the operator's default list applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// A tier name, for people (e.g. `free`, `pro`); no limit follows from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
}

impl TenantLimits {
    /// The limits in force: each field of this record, else the default's.
    pub fn over(&self, defaults: &QuotaDefaults) -> Effective {
        let or = |own: Option<u32>, default: u32| own.filter(|n| *n > 0).unwrap_or(default);
        Effective {
            requests_per_minute: or(self.requests_per_minute, defaults.requests_per_minute),
            concurrent: or(self.concurrent, defaults.concurrent),
            tokens_per_day: self
                .tokens_per_day
                .filter(|n| *n > 0)
                .unwrap_or(defaults.tokens_per_day),
            stored_bytes: self
                .stored_bytes
                .filter(|n| *n > 0)
                .unwrap_or(defaults.stored_bytes),
            models: if self.models.is_empty() {
                defaults.models.clone()
            } else {
                self.models.clone()
            },
            tier: self.tier.clone(),
        }
    }
}

/// The limits in force for a tenant: its record over the defaults. Zero: no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Effective {
    /// Requests per minute.
    pub requests_per_minute: u32,
    /// Actions in flight at once (rpc path, per worker).
    pub concurrent: u32,
    /// LLM tokens per UTC day.
    pub tokens_per_day: u64,
    /// Stored document bytes.
    pub stored_bytes: u64,
    /// Models an action may name; empty: any.
    pub models: Vec<String>,
    /// The tier name, if the record has one.
    pub tier: Option<String>,
}

impl Effective {
    /// Whether an action may name `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| m == model)
    }
}

/// The operator's limits for tenants without a record (or fields a record leaves out),
/// from the `DA_TENANT_*` settings; zero: no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaDefaults {
    /// `DA_TENANT_REQUESTS_PER_MINUTE`.
    pub requests_per_minute: u32,
    /// `DA_TENANT_CONCURRENT`.
    pub concurrent: u32,
    /// `DA_TENANT_TOKENS_PER_DAY`.
    pub tokens_per_day: u64,
    /// `DA_TENANT_STORED_BYTES`.
    pub stored_bytes: u64,
    /// `DA_TENANT_MODELS`: models any tenant may name (comma-separated); empty: any.
    pub models: Vec<String>,
}

impl QuotaDefaults {
    /// The defaults the settings describe; an unparsable number names its variable.
    pub fn from_settings(settings: &Settings) -> Result<Self, SettingsError> {
        Ok(Self {
            requests_per_minute: settings
                .parsed_var("DA_TENANT_REQUESTS_PER_MINUTE")?
                .unwrap_or(0),
            concurrent: settings.parsed_var("DA_TENANT_CONCURRENT")?.unwrap_or(0),
            tokens_per_day: settings
                .parsed_var("DA_TENANT_TOKENS_PER_DAY")?
                .unwrap_or(0),
            stored_bytes: settings.parsed_var("DA_TENANT_STORED_BYTES")?.unwrap_or(0),
            models: split_models(settings.var("DA_TENANT_MODELS").unwrap_or_default()),
        })
    }
}

/// The model names of a comma-separated list, blanks dropped.
pub fn split_models(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_overrides_only_what_it_sets() {
        let settings = Settings::from_pairs(&[
            ("DA_TENANT_REQUESTS_PER_MINUTE", "100"),
            ("DA_TENANT_MODELS", "a, b,"),
        ])
        .expect("settings");
        let defaults = QuotaDefaults::from_settings(&settings).expect("defaults");
        assert_eq!(defaults.models, ["a", "b"]);
        let record = TenantLimits {
            concurrent: Some(2),
            tier: Some("free".into()),
            ..TenantLimits::default()
        };
        let effective = record.over(&defaults);
        assert_eq!(effective.requests_per_minute, 100);
        assert_eq!(effective.concurrent, 2);
        assert_eq!(effective.tokens_per_day, 0);
        assert!(effective.allows_model("a") && !effective.allows_model("c"));
        let own = TenantLimits {
            models: vec!["c".into()],
            ..TenantLimits::default()
        };
        assert!(own.over(&defaults).allows_model("c"));
        assert!(
            TenantLimits::default()
                .over(&QuotaDefaults::default())
                .allows_model("any")
        );
    }

    #[test]
    fn a_bad_default_names_its_variable() {
        let err = Settings::from_pairs(&[("DA_TENANT_CONCURRENT", "many")]).expect_err("bad");
        assert!(err.to_string().contains("DA_TENANT_CONCURRENT"), "{err}");
    }
}
