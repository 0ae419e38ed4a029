//! [`JsonBucket`]: a JetStream KV bucket of JSON values with compare-and-set updates, the
//! one way services keep state (ingestion's tasks and document records, execution's agents
//! and conversation histories), so every instance of a service sees the same state and a
//! restarted one carries on where the last stopped.

use std::marker::PhantomData;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::ActionError;

/// Why state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// NATS failed (worth retrying).
    #[error("{bucket} bucket: {reason}")]
    Nats {
        /// The bucket.
        bucket: &'static str,
        /// What failed.
        reason: String,
    },
    /// A stored value is not what this version writes.
    #[error("{bucket} bucket, key {key}: unreadable value: {reason}")]
    Corrupt {
        /// The bucket.
        bucket: &'static str,
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The value to update is not there.
    #[error("{bucket} bucket: no {key}")]
    Missing {
        /// The bucket.
        bucket: &'static str,
        /// The key.
        key: String,
    },
}

impl From<StateError> for ActionError {
    fn from(err: StateError) -> Self {
        match err {
            StateError::Nats { .. } => ActionError::unavailable(err.to_string()),
            StateError::Corrupt { .. } | StateError::Missing { .. } => {
                ActionError::handler(err.to_string())
            }
        }
    }
}

/// A KV bucket holding values of type `T` as JSON.
#[derive(Clone)]
pub struct JsonBucket<T> {
    name: &'static str,
    store: kv::Store,
    _values: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> JsonBucket<T> {
    /// Opens the bucket, creating it (file storage, one revision kept per key, values
    /// expiring after `max_age` if non-zero, `replicas` copies: `Settings::stream_replicas`,
    /// so on a cluster the state outlives a node like the streams do) if it does not exist.
    /// An existing bucket is opened as it is: its replicas (and age) are not changed.
    pub async fn open(
        js: &jetstream::Context,
        name: &'static str,
        description: &str,
        max_age: Duration,
        replicas: usize,
    ) -> Result<Self, StateError> {
        let store = match js.get_key_value(name).await {
            Ok(store) => store,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: name.to_owned(),
                    description: description.to_owned(),
                    history: 1,
                    max_age,
                    storage: jetstream::stream::StorageType::File,
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await
                .map_err(|err| nats(name, err))?,
        };
        Ok(Self {
            name,
            store,
            _values: PhantomData,
        })
    }

    /// The value at `key` and its revision.
    pub async fn get(&self, key: &str) -> Result<Option<(T, u64)>, StateError> {
        let entry = self
            .store
            .entry(key)
            .await
            .map_err(|e| nats(self.name, e))?;
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                Ok(Some((self.decode(key, &entry.value)?, entry.revision)))
            }
            _ => Ok(None),
        }
    }

    /// Writes `value` at `key`, whatever was there.
    pub async fn put(&self, key: &str, value: &T) -> Result<u64, StateError> {
        self.store
            .put(key, self.encode(value)?)
            .await
            .map_err(|e| nats(self.name, e))
    }

    /// Writes `value` only if `key` holds nothing; `false` if it already did.
    pub async fn create(&self, key: &str, value: &T) -> Result<bool, StateError> {
        match self.store.create(key, self.encode(value)?).await {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(err) => Err(nats(self.name, err)),
        }
    }

    /// Applies `change` to the value at `key` with compare-and-set, retrying when another
    /// writer got there first, so concurrent updates (batches finishing at once on several
    /// instances) never overwrite each other. Returns the new value.
    pub async fn update(&self, key: &str, mut change: impl FnMut(&mut T)) -> Result<T, StateError> {
        loop {
            let Some((mut value, revision)) = self.get(key).await? else {
                return Err(StateError::Missing {
                    bucket: self.name,
                    key: key.to_owned(),
                });
            };
            change(&mut value);
            match self.store.update(key, self.encode(&value)?, revision).await {
                Ok(_) => return Ok(value),
                Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Err(err) => return Err(nats(self.name, err)),
            }
        }
    }

    /// Removes `key` (its history too).
    pub async fn delete(&self, key: &str) -> Result<(), StateError> {
        self.store.purge(key).await.map_err(|e| nats(self.name, e))
    }

    /// Removes `key` if it holds a value; whether it did, so a repeated delete can succeed
    /// and still say so. The value is not decoded to find out.
    pub async fn remove(&self, key: &str) -> Result<bool, StateError> {
        let entry = self
            .store
            .entry(key)
            .await
            .map_err(|e| nats(self.name, e))?;
        let held = entry.is_some_and(|entry| entry.operation == kv::Operation::Put);
        if held {
            self.delete(key).await?;
        }
        Ok(held)
    }

    /// The current value at `key` (if any), then every later one, as they are written.
    pub async fn watch(
        &self,
        key: &str,
    ) -> Result<impl Stream<Item = T> + Send + 'static + use<T>, StateError>
    where
        T: Send + 'static,
    {
        let watch = self
            .store
            .watch_with_history(key)
            .await
            .map_err(|e| nats(self.name, e))?;
        Ok(watch.filter_map(|entry| async move {
            let entry = entry.ok()?;
            (entry.operation == kv::Operation::Put)
                .then(|| serde_json::from_slice(&entry.value).ok())
                .flatten()
        }))
    }

    /// Every value whose key starts with `prefix` (e.g. `acme.`), in key order.
    ///
    /// Only the keys under `prefix` are read: the whole tokens of the prefix become a
    /// subject filter (`$KV.<bucket>.acme.>`), so one tenant's listing never touches another
    /// tenant's values. A value that cannot be read is skipped with a warning naming bucket
    /// and key rather than failing the whole listing: one bad record must not hide the good
    /// ones (nor, in a shared bucket, make another tenant's listing fail).
    pub async fn scan(&self, prefix: &str) -> Result<Vec<T>, StateError> {
        let mut values = Vec::new();
        for (key, value) in self.read_under(prefix).await? {
            match value {
                Ok(value) => values.push(value),
                Err(err) => {
                    tracing::warn!(bucket = self.name, %key, error = %err, "skipping an unreadable value");
                }
            }
        }
        Ok(values)
    }

    /// The current value of every live key starting with `prefix`, in key order, each
    /// decoded or with why it could not be; [`JsonBucket::scan`] without the skipping, so
    /// tests can see exactly which keys were read.
    async fn read_under(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, Result<T, StateError>)>, StateError> {
        let filter = format!("{}{}", self.store.prefix, subject_filter(prefix));
        let consumer = self
            .store
            .stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                description: Some(format!("listing of {} keys {prefix}*", self.name)),
                filter_subject: filter,
                // The current value of each key, not its history.
                deliver_policy: jetstream::consumer::DeliverPolicy::LastPerSubject,
                replay_policy: jetstream::consumer::ReplayPolicy::Instant,
                ..Default::default()
            })
            .await
            .map_err(|e| nats(self.name, e))?;
        let mut read = Vec::new();
        if consumer.cached_info().num_pending == 0 {
            return Ok(read);
        }
        let mut messages = consumer.messages().await.map_err(|e| nats(self.name, e))?;
        loop {
            let message = match tokio::time::timeout(LISTING_IDLE, messages.next()).await {
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(err))) => return Err(nats(self.name, err)),
                Ok(None) => break,
                Err(_elapsed) => {
                    return Err(nats(
                        self.name,
                        format!("listing {prefix}*: no message within {LISTING_IDLE:?}"),
                    ));
                }
            };
            let pending = message
                .info()
                .map(|info| info.pending)
                .map_err(|e| nats(self.name, e))?;
            let key = message
                .subject
                .strip_prefix(self.store.prefix.as_str())
                .unwrap_or(message.subject.as_str())
                .to_owned();
            // The filter's whole tokens may be wider than the prefix (`acme.do` reads
            // `acme.>`); deletions and expiry markers are not values.
            if key.starts_with(prefix) && is_put(message.headers.as_ref()) {
                let value = self.decode(&key, &message.payload);
                read.push((key, value));
            }
            if pending == 0 {
                break;
            }
        }
        read.sort_by(|(a, _), (b, _)| a.cmp(b));
        Ok(read)
    }

    fn encode(&self, value: &T) -> Result<bytes::Bytes, StateError> {
        serde_json::to_vec(value)
            .map(Into::into)
            .map_err(|err| StateError::Corrupt {
                bucket: self.name,
                key: String::new(),
                reason: err.to_string(),
            })
    }

    fn decode(&self, key: &str, bytes: &[u8]) -> Result<T, StateError> {
        serde_json::from_slice(bytes).map_err(|err| StateError::Corrupt {
            bucket: self.name,
            key: key.to_owned(),
            reason: err.to_string(),
        })
    }
}

/// How long a listing waits for its next message before giving up, so a listing whose last
/// value vanished while it was delivered (purged meanwhile) cannot hang.
const LISTING_IDLE: Duration = Duration::from_secs(10);

/// The subject filter (after `$KV.<bucket>.`) that covers every key starting with `prefix`:
/// its whole, literal tokens then `>`. A partial last token (`acme.do`) or a token that is
/// a wildcard is left out, so the filter may be wider than the prefix (never narrower); the
/// caller checks the prefix itself.
fn subject_filter(prefix: &str) -> String {
    let mut filter = String::new();
    let mut tokens: Vec<&str> = prefix.split('.').collect();
    // The last piece is partial (or empty, after a trailing `.`).
    tokens.pop();
    for token in tokens {
        if token.is_empty() || token.contains(['*', '>']) || token.contains(char::is_whitespace) {
            break;
        }
        filter.push_str(token);
        filter.push('.');
    }
    filter.push('>');
    filter
}

/// Whether a KV message is a value (not a delete, purge or expiry marker).
fn is_put(headers: Option<&async_nats::HeaderMap>) -> bool {
    let Some(headers) = headers else {
        return true;
    };
    if headers.get("Nats-Marker-Reason").is_some() {
        return false;
    }
    headers
        .get("KV-Operation")
        .is_none_or(|op| op.as_str() == "PUT")
}

fn nats(bucket: &'static str, err: impl std::fmt::Display) -> StateError {
    StateError::Nats {
        bucket,
        reason: err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_keep_whole_literal_tokens() {
        assert_eq!(subject_filter("acme."), "acme.>");
        assert_eq!(subject_filter("acme.docs."), "acme.docs.>");
        assert_eq!(
            subject_filter("acme.do"),
            "acme.>",
            "a partial token widens"
        );
        assert_eq!(subject_filter("acme"), ">");
        assert_eq!(subject_filter(""), ">");
        assert_eq!(subject_filter("*.x."), ">", "a wildcard is never passed on");
        assert_eq!(subject_filter("a>b.x."), ">");
        assert_eq!(subject_filter("a..b."), "a.>");
    }

    #[test]
    fn only_puts_are_values() {
        let mut headers = async_nats::HeaderMap::new();
        assert!(is_put(None));
        assert!(is_put(Some(&headers)));
        headers.insert("KV-Operation", "DEL");
        assert!(!is_put(Some(&headers)));
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("KV-Operation", "PURGE");
        assert!(!is_put(Some(&headers)));
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Marker-Reason", "MaxAge");
        assert!(!is_put(Some(&headers)));
    }
}

#[cfg(test)]
mod nats_tests {
    use serde::Deserialize;

    use super::*;
    use testkit::TestServer;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Item {
        n: u32,
    }

    async fn bucket(server: &TestServer) -> JsonBucket<Item> {
        let js = jetstream::new(server.client().await);
        JsonBucket::open(&js, "listing_test", "test", Duration::ZERO, 1)
            .await
            .expect("open")
    }

    /// Writes raw bytes under `key`, as a buggy or foreign writer might.
    async fn put_raw(bucket: &JsonBucket<Item>, key: &str, bytes: &'static [u8]) {
        bucket
            .store
            .put(key, bytes::Bytes::from_static(bytes))
            .await
            .expect("put raw");
    }

    #[tokio::test]
    async fn a_listing_reads_only_its_prefix_and_skips_bad_values() {
        let server = TestServer::start().await;
        let items = bucket(&server).await;
        items.put("acme.b", &Item { n: 2 }).await.expect("put");
        items.put("acme.a", &Item { n: 1 }).await.expect("put");
        items.put("acme.gone", &Item { n: 9 }).await.expect("put");
        items.delete("acme.gone").await.expect("delete");
        items.put("globex.a", &Item { n: 10 }).await.expect("put");
        items.put("globex.c", &Item { n: 30 }).await.expect("put");
        put_raw(&items, "globex.b", b"not json").await;
        put_raw(&items, "acmeish.x", b"{}").await;

        // globex's listing: the good values, the bad one skipped rather than failing.
        let globex = items.scan("globex.").await.expect("globex listing");
        assert_eq!(globex, vec![Item { n: 10 }, Item { n: 30 }]);

        // acme's listing neither fails on globex's bad value nor even reads it.
        let read = items.read_under("acme.").await.expect("acme read");
        let keys: Vec<&str> = read.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(
            keys,
            ["acme.a", "acme.b"],
            "deleted and foreign keys are not read"
        );
        assert!(read.iter().all(|(_, value)| value.is_ok()));
        assert_eq!(
            items.scan("acme.").await.expect("acme listing"),
            vec![Item { n: 1 }, Item { n: 2 }]
        );

        // The bad value is read by its own tenant's listing, and reported as corrupt.
        let read = items.read_under("globex.").await.expect("globex read");
        let bad: Vec<&str> = read
            .iter()
            .filter(|(_, value)| matches!(value, Err(StateError::Corrupt { .. })))
            .map(|(key, _)| key.as_str())
            .collect();
        assert_eq!(bad, ["globex.b"]);

        assert!(items.scan("initech.").await.expect("empty").is_empty());
        // A partial token reads its whole token's keys and keeps the prefix's.
        assert_eq!(
            items.scan("acme.a").await.expect("partial"),
            vec![Item { n: 1 }]
        );
    }

    #[tokio::test]
    async fn a_listing_sees_the_latest_value_of_each_key() {
        let server = TestServer::start().await;
        let items = bucket(&server).await;
        for n in 0..5 {
            items.put("acme.a", &Item { n }).await.expect("put");
        }
        items.put("acme.b", &Item { n: 7 }).await.expect("put");
        assert_eq!(
            items.scan("acme.").await.expect("listing"),
            vec![Item { n: 4 }, Item { n: 7 }]
        );
    }
}
