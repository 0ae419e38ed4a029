//! JSON values in a KV bucket with compare-and-set updates: the framework's
//! [`platform::kv`], re-exported under the name ingestion's modules have always used.

pub use platform::kv::{JsonBucket, StateError};
