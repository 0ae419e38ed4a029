//! The services this binary can run, by name. Each later service adds one line here.

use shared::Dispatcher;

/// Every service, in the order `dev` starts them.
pub const ALL: &[&str] = &["echo"];

/// The dispatcher of the service called `name`.
pub fn dispatcher(name: &str) -> Option<Dispatcher> {
    match name {
        "echo" => Some(echo::dispatcher()),
        _ => None,
    }
}
