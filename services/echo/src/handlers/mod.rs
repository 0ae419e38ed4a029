//! One file per handler.

mod fail;
mod panic;
mod ping;
mod sleep;

pub use fail::fail;
pub use panic::panic;
pub use ping::ping;
pub use sleep::sleep;
