//! HTTP building blocks (feature `http`), shared by the services' routes and the gateway.
//!
//! Every HTTP surface answers errors in one JSON shape and authenticates the same way, so
//! these live here rather than in each service:
//!
//! - [`error`]: [`ApiError`], the `{"error": {"code", "message"}}` body, and [`ApiJson`], a
//!   JSON extractor whose rejection has that shape.
//! - [`api_keys`]: [`ApiKeys`], keys naming a tenant, stored hashed in the KV bucket `api_keys`.
//! - [`auth`]: [`Authenticated`], the extractor that turns a request's key into its tenant,
//!   and [`QueryAuthenticated`], which also takes `?api_key=`, for the routes browsers open
//!   without headers.
//! - [`query_key`]: the `api_key` query parameter, read and redacted for logs.
//! - [`limits`]: [`TenantSlots`], at most N uploads, streams or sockets at once per tenant
//!   (429 with `Retry-After` past it).
//!
//! A router authenticates by holding [`ApiKeys`] in its state:
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use platform::http::{ApiKeys, Authenticated};
//!
//! async fn whoami(auth: Authenticated) -> String {
//!     auth.tenant.to_string()
//! }
//!
//! # async fn run(js: async_nats::jetstream::Context) -> Result<(), Box<dyn std::error::Error>> {
//! let keys = ApiKeys::open(&js, 1).await?;
//! let app: Router = Router::new().route("/whoami", get(whoami)).with_state(keys);
//! # Ok(()) }
//! ```

pub mod api_keys;
pub mod auth;
pub mod error;
pub mod limits;
pub mod query_key;

pub use api_keys::{ApiKeys, ApiKeysError, KeyInfo};
pub use auth::{Authenticated, QueryAuthenticated};
pub use error::{ApiError, ApiJson};
pub use limits::{Slot, TenantSlots};

/// Key store failures as HTTP answers: a store that does not answer is worth retrying
/// (503); a reference that cannot name a key is the caller's mistake (400).
impl From<ApiKeysError> for ApiError {
    fn from(err: ApiKeysError) -> Self {
        match err {
            ApiKeysError::Store { .. } => ApiError::unavailable(err.to_string()),
            ApiKeysError::NotAReference(_) | ApiKeysError::Ambiguous(_) => {
                ApiError::bad_request(err.to_string())
            }
            ApiKeysError::Corrupt { .. } => ApiError::internal(err.to_string()),
        }
    }
}
