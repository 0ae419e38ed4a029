//! One file per handler.

mod collection_put;
mod delete_document;
mod embedded;
mod get_status;
mod ingest_document;

pub use collection_put::collection_put;
pub use delete_document::{delete_document, remove_document};
pub use embedded::{BatchTarget, embedded};
pub use get_status::get_status;
pub use ingest_document::ingest_document;
