//! One module per subcommand.

pub mod bench;
pub mod dev;
pub mod dlq;
pub mod gateway;
pub mod ingest;
pub mod keys;
pub mod replay;
pub mod schema;
pub mod send;
pub mod streams;
pub mod tail;
pub mod tenants;
pub mod worker;
