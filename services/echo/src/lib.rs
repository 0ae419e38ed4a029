//! # echo: the reference service
//!
//! The smallest complete service: the fixture of the framework's tests and the target of
//! `domain-actions bench`. Read it to see how a service is put together.
//!
//! - [`actions`]: the payload types, each naming its action type once.
//! - [`handlers`]: one file per handler.
//! - [`dispatcher`]: the registration, as every service writes it.
//!
//! | action type | data | result |
//! |---|---|---|
//! | `echo.ping` | any JSON | the same JSON |
//! | `echo.fail` | `{retryable, message}` | an error, retried if `retryable` |
//! | `echo.sleep` | `{ms}` | `{slept_ms}` after sleeping |
//! | `echo.panic` | `{message?}` | panics (the worker turns it into `handler_panic`) |

pub mod actions;
pub mod handlers;

use shared::Dispatcher;

/// The echo domain's dispatcher with every handler registered.
pub fn dispatcher() -> Dispatcher {
    Dispatcher::new("echo")
        .on::<actions::Ping, _>(handlers::ping)
        .on::<actions::Fail, _>(handlers::fail)
        .on::<actions::Sleep, _>(handlers::sleep)
        .on::<actions::Panic, _>(handlers::panic)
}
