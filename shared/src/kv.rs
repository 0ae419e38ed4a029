//! [`JsonBucket`]: a JetStream KV bucket of JSON values with compare-and-set updates, the
//! one way services keep state (ingestion's tasks and document records, execution's agents
//! and conversation histories), so every instance of a service sees the same state and a
//! restarted one carries on where the last stopped.

use std::marker::PhantomData;
use std::time::Duration;

use crate::ActionError;
use async_nats::jetstream::{self, kv};
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

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

    /// Every value whose key starts with `prefix` (e.g. `acme.`), in key order. Reads every
    /// key of the bucket: fine for listings, not for hot paths.
    pub async fn scan(&self, prefix: &str) -> Result<Vec<T>, StateError> {
        let keys = self.store.keys().await.map_err(|e| nats(self.name, e))?;
        let mut keys: Vec<String> = keys
            .filter_map(|key| async move { key.ok() })
            .filter(|key| futures::future::ready(key.starts_with(prefix)))
            .collect()
            .await;
        keys.sort();
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some((value, _)) = self.get(&key).await? {
                values.push(value);
            }
        }
        Ok(values)
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

fn nats(bucket: &'static str, err: impl std::fmt::Display) -> StateError {
    StateError::Nats {
        bucket,
        reason: err.to_string(),
    }
}
