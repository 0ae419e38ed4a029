//! The action: envelope, names, results and errors.
//!
//! - [`names`]: validated [`Domain`], [`TenantId`], [`ActionType`].
//! - [`envelope`]: [`Action<T>`] and the [`ActionPayload`] trait.
//! - [`result`]: [`ActionResult`], the data of a result action.
//! - [`error`]: [`ErrorCode`] and [`ActionError`].
//! - [`decode`]: turning a received message into a [`RawAction`], or a rejection.

pub mod decode;
pub mod envelope;
pub mod error;
pub mod names;
pub mod result;

pub use decode::{Received, Rejection, decode};
pub use envelope::{Action, ActionPayload, RawAction};
pub use error::{ActionError, ErrorCode};
pub use names::{ActionType, Domain, NameError, TenantId};
pub use result::{ActionResult, ResultAddress, ResultStatus, derived_id};
