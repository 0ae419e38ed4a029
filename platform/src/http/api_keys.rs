//! [`ApiKeys`]: API keys that name a tenant, kept in the JetStream KV bucket `api_keys`.
//!
//! An HTTP caller proves who it is with a key; the key decides the tenant, so no request
//! field can reach another tenant's data. Keys live in NATS like everything else (no
//! second database), and only their SHA-256 is stored: reading the bucket (a backup, a
//! `nats kv` session) does not reveal a usable key. The plaintext is shown once, at
//! creation.
//!
//! A key is `da_` and 64 lowercase hex digits (32 random bytes). The bucket's keys are the
//! hex SHA-256 of the whole key; its values JSON `{tenant_id, created_at, label?}`.
//! Verifying needs no constant-time comparison: the secret is never compared, only its
//! hash looked up.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::kv::{self, Store};
use bytes::Bytes;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use shared::action::TenantId;

/// The KV bucket holding the keys' hashes.
pub const BUCKET: &str = "api_keys";
/// What every key starts with, so a leaked one is recognisable (secret scanners, logs) and
/// anything else is refused without a lookup.
pub const KEY_PREFIX: &str = "da_";
/// How long a verified key is trusted without asking NATS again. Revoking in this process
/// takes effect at once; another process may accept a revoked key for up to this long.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// How many hex digits of a hash `list` shows: enough to tell keys apart and to revoke one.
pub const HASH_PREFIX_LEN: usize = 12;
/// The shortest hash prefix `revoke` accepts, so a typo cannot match a key by chance.
pub const MIN_REVOKE_PREFIX: usize = 8;

/// Random bytes per key: 256 bits cannot be guessed.
const KEY_BYTES: usize = 32;
/// Cached verifications kept at most, so a flood of valid keys cannot grow memory.
const CACHE_MAX: usize = 10_000;

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeysError {
    /// NATS or the bucket did not answer; the operation may work later (HTTP 503).
    #[error("API key store: cannot {action}: {source}")]
    Store {
        /// What was being done, e.g. `read a key`.
        action: &'static str,
        /// The NATS error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored record does not parse: the bucket was written by something else.
    #[error("API key store: record {hash_prefix} is corrupt: {source}")]
    Corrupt {
        /// The first hex digits of the record's hash.
        hash_prefix: String,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// `revoke` was given something that is neither a key nor a hash (prefix).
    #[error(
        "{0:?} is not an API key (da_…), a key hash or a hash prefix of at least {MIN_REVOKE_PREFIX} hex digits"
    )]
    NotAReference(String),
    /// `revoke` was given a hash prefix that more than one key has.
    #[error("hash prefix {0:?} matches more than one key; give more digits")]
    Ambiguous(String),
}

impl ApiKeysError {
    fn store(action: &'static str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Store {
            action,
            source: Box::new(source),
        }
    }
}

/// A stored key's record, as shown by [`ApiKeys::list`]; never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// The first [`HASH_PREFIX_LEN`] hex digits of the key's hash: enough to revoke it.
    pub hash_prefix: String,
    /// The tenant every request with this key acts as.
    pub tenant_id: TenantId,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// What the creator said it is for, e.g. `ci` or `alice laptop`.
    pub label: Option<String>,
}

/// The bucket's value for one key.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    tenant_id: TenantId,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label: Option<String>,
}

/// Verified hashes and when they stop being trusted.
type Cache = HashMap<String, (TenantId, Instant)>;

/// The API keys of all tenants. Cheap to clone (one KV handle and a shared cache), so it
/// can sit in an axum state; [`crate::http::Authenticated`] finds it there.
#[derive(Clone)]
pub struct ApiKeys {
    store: Store,
    cache: Arc<Mutex<Cache>>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys").field("bucket", &BUCKET).finish()
    }
}

impl ApiKeys {
    /// Opens the `api_keys` bucket, creating it (history 1, file storage, `replicas` copies:
    /// `Settings::stream_replicas`, so keys survive losing a cluster node) if it is missing,
    /// so the first `keys create` on a fresh server needs no setup step. An existing bucket
    /// is opened as it is: its replicas are not changed.
    pub async fn open(js: &jetstream::Context, replicas: usize) -> Result<Self, ApiKeysError> {
        let store = match js.get_key_value(BUCKET).await {
            Ok(store) => store,
            Err(_missing) => match js.create_key_value(bucket_config(replicas)).await {
                Ok(store) => store,
                // Another process may have created it meanwhile.
                Err(err) => js
                    .get_key_value(BUCKET)
                    .await
                    .map_err(|_| ApiKeysError::store("open the api_keys bucket", err))?,
            },
        };
        Ok(Self {
            store,
            cache: Arc::default(),
        })
    }

    /// Creates a key for `tenant` and returns it. This is the only time the plaintext
    /// exists: only its hash is stored, so a lost key cannot be recovered, only replaced.
    pub async fn create(
        &self,
        tenant: &TenantId,
        label: Option<&str>,
    ) -> Result<String, ApiKeysError> {
        let key = new_key();
        let hash = hash(&key);
        let record = Record {
            tenant_id: tenant.clone(),
            created_at: OffsetDateTime::now_utc(),
            label: label.map(str::to_owned),
        };
        let value = serde_json::to_vec(&record).map_err(|source| ApiKeysError::Corrupt {
            hash_prefix: hash_prefix(&hash).to_owned(),
            source,
        })?;
        // `create`, not `put`: a (never expected) hash collision must not replace a key.
        self.store
            .create(&hash, Bytes::from(value))
            .await
            .map_err(|err| ApiKeysError::store("store a key", err))?;
        Ok(key)
    }

    /// The tenant of `key`, or `None` if it is not a key we issued or was revoked.
    /// Something that is not shaped like a key is refused without asking NATS.
    pub async fn verify(&self, key: &str) -> Result<Option<TenantId>, ApiKeysError> {
        if !is_key(key) {
            return Ok(None);
        }
        let hash = hash(key);
        if let Some(tenant) = self.cached(&hash) {
            return Ok(Some(tenant));
        }
        let Some(record) = self.record(&hash).await? else {
            return Ok(None);
        };
        self.remember(hash, record.tenant_id.clone());
        Ok(Some(record.tenant_id))
    }

    /// Revokes a key given as the key itself, its hash, or a hash prefix (as `list` shows
    /// it). `false` if no such key exists. Effective at once in this process and within
    /// [`CACHE_TTL`] in every other.
    pub async fn revoke(&self, key_or_hash: &str) -> Result<bool, ApiKeysError> {
        let hash = if is_key(key_or_hash) {
            hash(key_or_hash)
        } else if is_hash(key_or_hash) {
            key_or_hash.to_ascii_lowercase()
        } else if is_hash_prefix(key_or_hash) {
            let prefix = key_or_hash.to_ascii_lowercase();
            let mut matches = self.hashes().await?;
            matches.retain(|hash| hash.starts_with(&prefix));
            match matches.as_slice() {
                [] => return Ok(false),
                [one] => one.clone(),
                _ => return Err(ApiKeysError::Ambiguous(key_or_hash.to_owned())),
            }
        } else {
            return Err(ApiKeysError::NotAReference(key_or_hash.to_owned()));
        };
        self.forget(&hash);
        if self.record(&hash).await?.is_none() {
            return Ok(false);
        }
        // Purge, not delete: the record (tenant, label) does not linger in the stream.
        self.store
            .purge(&hash)
            .await
            .map_err(|err| ApiKeysError::store("revoke a key", err))?;
        Ok(true)
    }

    /// Every key's record, oldest first; never the keys themselves. A record that does not
    /// parse is skipped with a warning naming the bucket and its hash prefix, so one bad
    /// record does not hide every other key from `keys ls`.
    pub async fn list(&self) -> Result<Vec<KeyInfo>, ApiKeysError> {
        let mut keys = Vec::new();
        for hash in self.hashes().await? {
            let record = match self.record(&hash).await {
                Ok(Some(record)) => record,
                // A key revoked between listing and reading is simply not shown.
                Ok(None) => continue,
                Err(err @ ApiKeysError::Corrupt { .. }) => {
                    tracing::warn!(bucket = BUCKET, key = hash_prefix(&hash), error = %err, "skipping an unreadable API key record");
                    continue;
                }
                Err(err) => return Err(err),
            };
            keys.push(KeyInfo {
                hash_prefix: hash_prefix(&hash).to_owned(),
                tenant_id: record.tenant_id,
                created_at: record.created_at,
                label: record.label,
            });
        }
        keys.sort_by_key(|info| info.created_at);
        Ok(keys)
    }

    /// The hashes of every live key.
    async fn hashes(&self) -> Result<Vec<String>, ApiKeysError> {
        let keys = self
            .store
            .keys()
            .await
            .map_err(|err| ApiKeysError::store("list keys", err))?;
        keys.try_collect()
            .await
            .map_err(|err| ApiKeysError::store("list keys", err))
    }

    /// The record stored under `hash`, if any.
    async fn record(&self, hash: &str) -> Result<Option<Record>, ApiKeysError> {
        let Some(value) = self
            .store
            .get(hash)
            .await
            .map_err(|err| ApiKeysError::store("read a key", err))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&value)
            .map(Some)
            .map_err(|source| ApiKeysError::Corrupt {
                hash_prefix: hash_prefix(hash).to_owned(),
                source,
            })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // The cache holds no invariant a panic could break; a poisoned lock is still usable.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cached(&self, hash: &str) -> Option<TenantId> {
        let mut cache = self.cache();
        match cache.get(hash) {
            Some((tenant, until)) if *until > Instant::now() => Some(tenant.clone()),
            Some(_) => {
                cache.remove(hash);
                None
            }
            None => None,
        }
    }

    fn remember(&self, hash: String, tenant: TenantId) {
        let now = Instant::now();
        let mut cache = self.cache();
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (_, until)| *until > now);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(hash, (tenant, now + CACHE_TTL));
    }

    fn forget(&self, hash: &str) {
        self.cache().remove(hash);
    }
}

/// The bucket's settings: one value per key (no history of revoked records), on disk so
/// keys survive a restart, on `replicas` nodes so they survive losing one.
fn bucket_config(replicas: usize) -> kv::Config {
    kv::Config {
        bucket: BUCKET.to_owned(),
        description: "API keys: SHA-256 of each key -> {tenant_id, created_at, label}".to_owned(),
        history: 1,
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    }
}

/// A fresh key: the prefix and 32 random bytes from the OS-seeded CSPRNG, in hex.
fn new_key() -> String {
    let bytes: [u8; KEY_BYTES] = rand::random();
    let mut key = String::with_capacity(KEY_PREFIX.len() + 2 * KEY_BYTES);
    key.push_str(KEY_PREFIX);
    key.push_str(&to_hex(&bytes));
    key
}

/// The lowercase hex SHA-256 of the whole key: the bucket's key for it.
fn hash(key: &str) -> String {
    to_hex(&Sha256::digest(key.as_bytes()))
}

fn to_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut hex, byte| {
            // Writing to a String cannot fail.
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// Whether `s` is shaped like a key we issue.
fn is_key(s: &str) -> bool {
    s.strip_prefix(KEY_PREFIX)
        .is_some_and(|hex| hex.len() == 2 * KEY_BYTES && is_hex(hex))
}

/// Whether `s` is shaped like a whole hash.
fn is_hash(s: &str) -> bool {
    s.len() == 64 && is_hex(s)
}

/// Whether `s` could be the start of a hash and is long enough to revoke by.
fn is_hash_prefix(s: &str) -> bool {
    (MIN_REVOKE_PREFIX..64).contains(&s.len()) && is_hex(s)
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn hash_prefix(hash: &str) -> &str {
    hash.get(..HASH_PREFIX_LEN).unwrap_or(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_hex_and_unique() {
        let a = new_key();
        let b = new_key();
        assert_ne!(a, b);
        assert!(a.starts_with("da_"), "{a}");
        assert_eq!(a.len(), 3 + 64, "{a}");
        assert!(
            a[3..]
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
            "{a}"
        );
        assert!(is_key(&a));
    }

    #[test]
    fn hash_is_the_hex_sha256_of_the_whole_key() {
        // sha256("abc"), the FIPS 180-2 test vector.
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let key = new_key();
        assert!(is_hash(&hash(&key)));
        assert_ne!(hash(&key), hash(&key[3..]), "the prefix is hashed too");
    }

    #[test]
    fn only_key_shaped_strings_are_keys() {
        let hex = "ab".repeat(32);
        assert!(is_key(&format!("da_{hex}")));
        for not_key in [
            hex.clone(),
            format!("xx_{hex}"),
            format!("da_{}", &hex[1..]),
            format!("da_{hex}0"),
            format!("da_{}zz", &hex[2..]),
            String::new(),
            "da_".to_owned(),
        ] {
            assert!(!is_key(&not_key), "{not_key}");
        }
    }

    #[test]
    fn revoke_references_need_enough_hex() {
        assert!(is_hash(&"0".repeat(64)));
        assert!(is_hash_prefix("0123abcd"));
        assert!(!is_hash_prefix("0123abc"), "too short");
        assert!(!is_hash_prefix("0123abcg"), "not hex");
        assert_eq!(hash_prefix(&"f".repeat(64)), "f".repeat(HASH_PREFIX_LEN));
    }

    #[test]
    fn records_round_trip_as_rfc3339_json() {
        let record = Record {
            tenant_id: TenantId::new("acme").expect("tenant"),
            created_at: OffsetDateTime::UNIX_EPOCH,
            label: None,
        };
        let json = serde_json::to_value(&record).expect("serialise");
        assert_eq!(
            json,
            serde_json::json!({"tenant_id": "acme", "created_at": "1970-01-01T00:00:00Z"})
        );
        let back: Record = serde_json::from_value(json).expect("parse");
        assert_eq!(back.tenant_id.as_str(), "acme");
        let bad = serde_json::json!({"tenant_id": "a.b", "created_at": "1970-01-01T00:00:00Z"});
        assert!(
            serde_json::from_value::<Record>(bad).is_err(),
            "tenant validated"
        );
    }
}

#[cfg(test)]
mod nats_tests {
    use super::*;
    use testkit::TestServer;

    async fn keys(server: &TestServer) -> ApiKeys {
        let js = jetstream::new(server.client().await);
        ApiKeys::open(&js, 1).await.expect("open api_keys")
    }

    fn tenant(name: &str) -> TenantId {
        TenantId::new(name).expect("tenant")
    }

    #[tokio::test]
    async fn created_key_verifies_to_its_tenant() {
        let server = TestServer::start().await;
        let keys = keys(&server).await;
        let key = keys
            .create(&tenant("acme"), Some("ci"))
            .await
            .expect("create");
        assert!(is_key(&key), "{key}");
        assert_eq!(
            keys.verify(&key).await.expect("verify"),
            Some(tenant("acme"))
        );
        // Again, from the cache.
        assert_eq!(
            keys.verify(&key).await.expect("verify"),
            Some(tenant("acme"))
        );
    }

    #[tokio::test]
    async fn only_the_hash_is_stored() {
        let server = TestServer::start().await;
        let keys = keys(&server).await;
        let key = keys.create(&tenant("acme"), None).await.expect("create");
        let stored = keys.hashes().await.expect("hashes");
        assert_eq!(stored, vec![hash(&key)]);
        let value = keys
            .store
            .get(hash(&key))
            .await
            .expect("get")
            .expect("value");
        let text = String::from_utf8_lossy(&value);
        assert!(!text.contains(&key[3..]), "{text}");
    }

    #[tokio::test]
    async fn unknown_and_malformed_keys_verify_to_none() {
        let server = TestServer::start().await;
        let keys = keys(&server).await;
        keys.create(&tenant("acme"), None).await.expect("create");
        for wrong in [
            new_key(),
            "da_nope".to_owned(),
            "Bearer x".to_owned(),
            String::new(),
        ] {
            assert_eq!(keys.verify(&wrong).await.expect("verify"), None, "{wrong}");
        }
    }

    #[tokio::test]
    async fn revoked_keys_stop_verifying_at_once() {
        let server = TestServer::start().await;
        let keys = keys(&server).await;
        let key = keys.create(&tenant("acme"), None).await.expect("create");
        assert!(keys.verify(&key).await.expect("verify").is_some());
        assert!(keys.revoke(&key).await.expect("revoke"));
        assert_eq!(keys.verify(&key).await.expect("verify"), None);
        assert!(
            !keys.revoke(&key).await.expect("revoke again"),
            "already gone"
        );
    }

    #[tokio::test]
    async fn revoke_by_hash_or_prefix() {
        let server = TestServer::start().await;
        let keys = keys(&server).await;
        let a = keys.create(&tenant("acme"), None).await.expect("create");
        let b = keys.create(&tenant("acme"), None).await.expect("create");
        assert!(keys.revoke(&hash(&a)).await.expect("revoke by hash"));
        assert!(
            keys.revoke(hash_prefix(&hash(&b)))
                .await
                .expect("by prefix")
        );
        assert_eq!(keys.verify(&a).await.expect("verify"), None);
        assert_eq!(keys.verify(&b).await.expect("verify"), None);
        assert!(!keys.revoke("0123456789ab").await.expect("no match"));
        assert!(matches!(
            keys.revoke("nonsense").await,
            Err(ApiKeysError::NotAReference(_))
        ));
    }

    #[tokio::test]
    async fn each_key_maps_to_its_own_tenant() {
        let server = TestServer::start().await;
        let keys = keys(&server).await;
        let acme = keys.create(&tenant("acme"), None).await.expect("create");
        let globex = keys
            .create(&tenant("globex"), Some("ops"))
            .await
            .expect("create");
        assert_eq!(
            keys.verify(&acme).await.expect("verify"),
            Some(tenant("acme"))
        );
        assert_eq!(
            keys.verify(&globex).await.expect("verify"),
            Some(tenant("globex"))
        );
        let listed = keys.list().await.expect("list");
        assert_eq!(listed.len(), 2, "{listed:?}");
        let globex_info = listed
            .iter()
            .find(|info| info.tenant_id.as_str() == "globex")
            .expect("globex listed");
        assert_eq!(globex_info.label.as_deref(), Some("ops"));
        assert_eq!(globex_info.hash_prefix, hash_prefix(&hash(&globex)));
    }

    #[tokio::test]
    async fn a_corrupt_record_is_skipped_by_list() {
        let server = TestServer::start().await;
        let keys = keys(&server).await;
        keys.create(&tenant("acme"), Some("good"))
            .await
            .expect("create");
        keys.store
            .put("f".repeat(64), Bytes::from_static(b"not json"))
            .await
            .expect("put garbage");
        let listed = keys.list().await.expect("list");
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].label.as_deref(), Some("good"));
    }

    #[tokio::test]
    async fn open_is_idempotent_and_shares_keys() {
        let server = TestServer::start().await;
        let first = keys(&server).await;
        let key = first.create(&tenant("acme"), None).await.expect("create");
        let second = keys(&server).await;
        assert_eq!(
            second.verify(&key).await.expect("verify"),
            Some(tenant("acme"))
        );
    }
}
