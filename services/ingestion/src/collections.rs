//! Per-collection chunking settings in the KV bucket `collections`.
//!
//! The global default (256 tokens, 32 overlap) fits all-MiniLM-L6-v2, which reads 256
//! tokens; a collection fed to another embedder, or one whose documents search better in
//! smaller or larger pieces, can override it. Keys are `<tenant>.<first 16 hex chars of
//! the SHA-256 of the collection name>`: names are free text (dots, spaces, anything but
//! control characters) and KV keys are not, so the name itself is kept in the value.

use std::ops::RangeInclusive;
use std::time::Duration;

use async_nats::jetstream;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::{ActionError, TenantId};

use crate::bucket::{JsonBucket, StateError};

/// Tokens per chunk a collection may ask for: fewer than 16 leaves chunks too small to
/// mean anything, more than 8192 is past any embedder we run.
pub const CHUNK_TOKENS: RangeInclusive<usize> = 16..=8192;

/// How one collection's documents are cut into chunks.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
pub struct CollectionSettings {
    /// Tokens per chunk (16 to 8192).
    pub chunk_tokens: usize,
    /// Tokens shared by neighbouring chunks (fewer than `chunk_tokens`).
    pub chunk_overlap: usize,
}

impl CollectionSettings {
    /// Checks the sizes, so a bad setting is refused when stored rather than failing every
    /// later ingestion into the collection.
    pub fn validate(&self) -> Result<(), InvalidSettings> {
        validate_chunking(self.chunk_tokens, self.chunk_overlap)
    }
}

/// The one rule for chunk sizes, wherever they come from (a collection's settings, a
/// request, the service's defaults): `chunk_tokens` in [`CHUNK_TOKENS`] and an overlap
/// smaller than the chunk. Absurd sizes would otherwise make the chunker cut a document
/// into millions of pieces or into one unembeddable block.
pub fn validate_chunking(chunk_tokens: usize, chunk_overlap: usize) -> Result<(), InvalidSettings> {
    if !CHUNK_TOKENS.contains(&chunk_tokens) {
        return Err(InvalidSettings::Tokens(chunk_tokens));
    }
    if chunk_overlap >= chunk_tokens {
        return Err(InvalidSettings::Overlap {
            overlap: chunk_overlap,
            tokens: chunk_tokens,
        });
    }
    Ok(())
}

/// A request's own sizes, checked by [`validate_chunking`] before anything is stored: a
/// lone `chunk_overlap` is held to the largest chunk allowed, since the collection's or the
/// default size it will pair with is only known later (and checked again then).
pub fn validate_request_chunking(
    chunk_tokens: Option<usize>,
    chunk_overlap: Option<usize>,
) -> Result<(), InvalidSettings> {
    match (chunk_tokens, chunk_overlap) {
        (Some(tokens), overlap) => validate_chunking(tokens, overlap.unwrap_or(0)),
        (None, Some(overlap)) => validate_chunking(*CHUNK_TOKENS.end(), overlap),
        (None, None) => Ok(()),
    }
}

/// Why settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSettings {
    /// `chunk_tokens` out of range.
    #[error("chunk_tokens is {0}; it must be 16 to 8192")]
    Tokens(usize),
    /// The overlap would be a whole chunk or more.
    #[error("chunk_overlap is {overlap}; it must be less than chunk_tokens ({tokens})")]
    Overlap {
        /// The overlap asked for.
        overlap: usize,
        /// The chunk size asked for.
        tokens: usize,
    },
}

impl From<InvalidSettings> for ActionError {
    fn from(err: InvalidSettings) -> Self {
        ActionError::invalid(err.to_string())
    }
}

/// Why settings could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum CollectionError {
    /// The settings (or the name) are not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The bucket failed.
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<InvalidSettings> for CollectionError {
    fn from(err: InvalidSettings) -> Self {
        Self::Invalid(err.to_string())
    }
}

impl From<CollectionError> for ActionError {
    fn from(err: CollectionError) -> Self {
        match err {
            CollectionError::Invalid(message) => ActionError::invalid(message),
            CollectionError::State(err) => err.into(),
        }
    }
}

/// One collection's stored settings, with its name (the key only holds a hash of it).
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
pub struct CollectionRecord {
    /// The collection.
    pub collection: String,
    /// Its chunking.
    #[serde(flatten)]
    pub settings: CollectionSettings,
}

/// The `collections` bucket.
#[derive(Clone)]
pub struct Collections {
    settings: JsonBucket<CollectionRecord>,
}

impl Collections {
    /// Opens (or creates, with `replicas` copies) the bucket.
    pub async fn open(js: &jetstream::Context, replicas: usize) -> Result<Self, StateError> {
        Ok(Self {
            settings: JsonBucket::open(
                js,
                "collections",
                "Chunking settings per tenant and collection",
                Duration::ZERO,
                replicas,
            )
            .await?,
        })
    }

    /// `<tenant>.<16 hex chars of SHA-256(collection)>`: a valid KV key whatever the name.
    pub fn key(tenant: &TenantId, collection: &str) -> String {
        let digest = Sha256::digest(collection.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("{tenant}.{hex}")
    }

    /// The collection's settings; `None` if it has none (the service's limits apply).
    pub async fn get(
        &self,
        tenant: &TenantId,
        collection: &str,
    ) -> Result<Option<CollectionSettings>, StateError> {
        Ok(self
            .settings
            .get(&Self::key(tenant, collection))
            .await?
            // A hash collision must not lend one collection another's settings.
            .filter(|(record, _)| record.collection == collection)
            .map(|(record, _)| record.settings))
    }

    /// Stores the collection's settings after checking them; what was stored.
    pub async fn put(
        &self,
        tenant: &TenantId,
        collection: &str,
        settings: CollectionSettings,
    ) -> Result<CollectionRecord, CollectionError> {
        query_contract::check_name("collection", collection)
            .map_err(|err| CollectionError::Invalid(err.message))?;
        settings.validate()?;
        let record = CollectionRecord {
            collection: collection.to_owned(),
            settings,
        };
        self.settings
            .put(&Self::key(tenant, collection), &record)
            .await?;
        Ok(record)
    }

    /// The tenant's collections that have settings.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<CollectionRecord>, StateError> {
        self.settings.scan(&format!("{tenant}.")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(chunk_tokens: usize, chunk_overlap: usize) -> CollectionSettings {
        CollectionSettings {
            chunk_tokens,
            chunk_overlap,
        }
    }

    #[test]
    fn settings_are_validated() {
        assert_eq!(settings(16, 0).validate(), Ok(()));
        assert_eq!(settings(512, 50).validate(), Ok(()));
        assert_eq!(settings(8192, 8191).validate(), Ok(()));
        assert_eq!(settings(15, 0).validate(), Err(InvalidSettings::Tokens(15)));
        assert_eq!(
            settings(8193, 0).validate(),
            Err(InvalidSettings::Tokens(8193))
        );
        assert_eq!(settings(0, 0).validate(), Err(InvalidSettings::Tokens(0)));
        assert_eq!(
            settings(64, 64).validate(),
            Err(InvalidSettings::Overlap {
                overlap: 64,
                tokens: 64
            })
        );
        assert!(settings(64, 100).validate().is_err());
    }

    #[test]
    fn request_knobs_follow_the_collection_rules() {
        assert_eq!(validate_request_chunking(None, None), Ok(()));
        assert_eq!(validate_request_chunking(Some(128), Some(16)), Ok(()));
        assert_eq!(validate_request_chunking(Some(128), None), Ok(()));
        assert_eq!(validate_request_chunking(None, Some(100)), Ok(()));
        assert_eq!(
            validate_request_chunking(Some(0), None),
            Err(InvalidSettings::Tokens(0))
        );
        assert_eq!(
            validate_request_chunking(Some(usize::MAX), Some(1)),
            Err(InvalidSettings::Tokens(usize::MAX))
        );
        assert_eq!(
            validate_request_chunking(None, Some(1_000_000)),
            Err(InvalidSettings::Overlap {
                overlap: 1_000_000,
                tokens: 8192
            })
        );
        assert_eq!(
            validate_request_chunking(Some(64), Some(64)),
            Err(InvalidSettings::Overlap {
                overlap: 64,
                tokens: 64
            })
        );
        // The same function as collection settings: same answers.
        for (tokens, overlap) in [(15, 0), (16, 15), (8193, 0), (300, 299), (300, 300)] {
            assert_eq!(
                validate_request_chunking(Some(tokens), Some(overlap)),
                settings(tokens, overlap).validate()
            );
        }
    }

    #[test]
    fn keys_are_per_tenant_and_safe_for_any_name() -> Result<(), shared::action::NameError> {
        let acme = TenantId::new("acme")?;
        let globex = TenantId::new("globex")?;
        let key = Collections::key(&acme, "Q3 reports. Final/draft *");
        let (tenant, hash) = key.split_once('.').unwrap_or_default();
        assert_eq!(tenant, "acme");
        assert_eq!(hash.len(), 16);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(key, Collections::key(&globex, "Q3 reports. Final/draft *"));
        assert_ne!(key, Collections::key(&acme, "Q3 reports"));
        Ok(())
    }

    #[test]
    fn records_keep_the_name_beside_flat_settings() -> Result<(), serde_json::Error> {
        let record = CollectionRecord {
            collection: "manual".to_owned(),
            settings: settings(128, 16),
        };
        let value = serde_json::to_value(&record)?;
        assert_eq!(
            value,
            serde_json::json!({"collection": "manual", "chunk_tokens": 128, "chunk_overlap": 16})
        );
        assert_eq!(serde_json::from_value::<CollectionRecord>(value)?, record);
        Ok(())
    }
}
