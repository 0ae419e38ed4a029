//! JSON values in a KV bucket with compare-and-set updates: the framework's
//! [`shared::kv`], re-exported under the name ingestion's modules have always used.

pub use shared::kv::{JsonBucket, StateError};
