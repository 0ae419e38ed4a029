//! Validated names: [`Domain`], [`TenantId`] and [`ActionType`].
//!
//! These three strings end up inside NATS subjects, so a bad one could reach another
//! tenant's subjects (`acme.>`), break routing (`a.b` as a tenant) or be refused by the
//! server. Each is a newtype that can only be built through validation, so anything that
//! holds one may interpolate it into a subject without checking again.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// Why a name was refused. The message names the rule, so a CLI or HTTP user can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A domain must be `[a-z][a-z0-9_]{0,31}` and must not be `dlq`.
    #[error("invalid domain {0:?}: expected [a-z][a-z0-9_]{{0,31}}, not \"dlq\"")]
    Domain(String),
    /// A tenant must be one NATS token of `[A-Za-z0-9_-]{1,64}`.
    #[error("invalid tenant {0:?}: expected 1 to 64 of [A-Za-z0-9_-]")]
    Tenant(String),
    /// An action type must be `<domain>.<verb>`, optionally followed by `.result`.
    #[error("invalid action type {0:?}: expected <domain>.<verb> with [a-z0-9_]+ verb")]
    ActionType(String),
}

/// A service's domain, e.g. `echo` or `execution`: the first token of its subjects.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Domain(String);

impl Domain {
    /// Validates a domain name.
    pub fn new(name: &str) -> Result<Self, NameError> {
        if Self::valid(name) {
            Ok(Self(name.to_owned()))
        } else {
            Err(NameError::Domain(name.to_owned()))
        }
    }

    /// Whether `name` keeps the domain rule (checked without building one: action types
    /// check their domain part on every message).
    fn valid(name: &str) -> bool {
        let mut bytes = name.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
        let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        first_ok && rest_ok && name.len() <= 32 && name != "dlq"
    }

    /// The name as it appears in subjects.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The JetStream stream holding this domain's actions and callbacks: the name in capitals.
    pub fn stream_name(&self) -> String {
        self.0.to_ascii_uppercase()
    }
}

/// A tenant: one NATS subject token, taken from the subject (or API key) and validated
/// before it touches any subject or store filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    /// Validates a tenant id.
    pub fn new(id: &str) -> Result<Self, NameError> {
        let ok = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(id.to_owned()))
        } else {
            Err(NameError::Tenant(id.to_owned()))
        }
    }

    /// The id as it appears in subjects.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The routing key of an action: `<domain>.<verb>`, or `<domain>.<verb>.result` for the
/// result of one. The dispatcher finds a handler by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ActionType(String);

/// The suffix that turns an action type into the type of its result.
const RESULT_SUFFIX: &str = ".result";

impl ActionType {
    /// Validates an action type.
    pub fn new(name: &str) -> Result<Self, NameError> {
        let err = || NameError::ActionType(name.to_owned());
        let base = name.strip_suffix(RESULT_SUFFIX).unwrap_or(name);
        let (domain, verb) = base.split_once('.').ok_or_else(err)?;
        let verb_ok = !verb.is_empty()
            && verb
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if Domain::valid(domain) && verb_ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(err())
        }
    }

    /// The domain whose service handles this action (the part before the first dot).
    pub fn domain(&self) -> Domain {
        Domain(self.domain_str().to_owned())
    }

    /// [`ActionType::domain`] without the allocation, for building subjects.
    pub(crate) fn domain_str(&self) -> &str {
        self.0.split('.').next().unwrap_or_default()
    }

    /// Whether this is the type of a result (`….result`).
    pub fn is_result(&self) -> bool {
        self.0.ends_with(RESULT_SUFFIX)
    }

    /// The type of this action's result: `<self>.result`.
    pub fn result_type(&self) -> ActionType {
        if self.is_result() {
            return self.clone();
        }
        let mut name = String::with_capacity(self.0.len() + RESULT_SUFFIX.len());
        name.push_str(&self.0);
        name.push_str(RESULT_SUFFIX);
        ActionType(name)
    }

    /// The name as it appears in headers and bodies.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_name {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::new(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_name!(Domain);
string_name!(TenantId);
string_name!(ActionType);

/// The JSON Schema of a validated name: a string with the rule as a pattern, so clients
/// generated from `domain-actions schema` can check a name before sending it.
macro_rules! name_schema {
    ($name:ident, $pattern:literal, $description:literal) => {
        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "pattern": $pattern,
                    "description": $description,
                })
            }
        }
    };
}

name_schema!(
    Domain,
    "^[a-z][a-z0-9_]{0,31}$",
    "A service's domain: the first token of its subjects (never `dlq`)."
);
name_schema!(
    TenantId,
    "^[A-Za-z0-9_-]{1,64}$",
    "A tenant: one NATS subject token."
);
name_schema!(
    ActionType,
    "^[a-z][a-z0-9_]{0,31}\\.[a-z0-9_]+(\\.result)?$",
    "The routing key: `<domain>.<verb>`, or `<domain>.<verb>.result` for its result."
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn domains() {
        for ok in [
            "echo",
            "execution",
            "a",
            "q_1",
            "abcdefghijklmnopqrstuvwxyz012345",
        ] {
            assert!(Domain::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Echo",
            "1x",
            "_x",
            "$sys",
            "dlq",
            "a.b",
            "a-b",
            "a*",
            "abcdefghijklmnopqrstuvwxyz0123456",
        ] {
            assert!(Domain::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tenants() {
        for ok in ["acme", "Tenant-1", "t_2", "A"] {
            assert!(TenantId::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a.b", "*", ">", "a b", "acme.>", "é", &"x".repeat(65)] {
            assert!(TenantId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn action_types() {
        let t = ActionType::new("execution.agent_run").unwrap();
        assert_eq!(t.domain().as_str(), "execution");
        assert!(!t.is_result());
        assert_eq!(t.result_type().as_str(), "execution.agent_run.result");
        assert!(t.result_type().is_result());
        for bad in [
            "",
            "echo",
            "echo.",
            ".ping",
            "Echo.ping",
            "echo.Ping",
            "echo.ping.more",
            "echo.ping.result.result",
            "dlq.x",
            "echo.pi ng",
        ] {
            assert!(ActionType::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deserialize_validates() {
        assert!(serde_json::from_str::<TenantId>("\"acme\"").is_ok());
        let err = serde_json::from_str::<TenantId>("\"a.b\"").unwrap_err();
        assert!(err.to_string().contains("invalid tenant"));
    }

    proptest! {
        // Whatever a tenant string is, if it validates it is exactly one subject token.
        #[test]
        fn valid_tenants_are_one_token(s in "\\PC{0,70}") {
            if let Ok(t) = TenantId::new(&s) {
                prop_assert!(!t.as_str().contains(['.', '*', '>', ' ']));
                prop_assert!(!t.as_str().is_empty() && t.as_str().len() <= 64);
            }
        }

        #[test]
        fn tenant_pattern_accepted(s in "[A-Za-z0-9_-]{1,64}") {
            prop_assert!(TenantId::new(&s).is_ok());
        }

        #[test]
        fn domain_pattern_accepted(s in "[a-z][a-z0-9_]{0,31}") {
            prop_assume!(s != "dlq");
            prop_assert!(Domain::new(&s).is_ok());
        }

        #[test]
        fn valid_action_types_have_a_valid_domain(s in "\\PC{0,40}") {
            if let Ok(t) = ActionType::new(&s) {
                prop_assert!(Domain::new(t.domain().as_str()).is_ok());
                prop_assert_eq!(t.as_str().split('.').count(), if t.is_result() { 3 } else { 2 });
            }
        }
    }
}
