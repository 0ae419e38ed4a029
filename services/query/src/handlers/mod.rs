//! One file per handler.

mod answer;
mod delete;
mod embedded;
mod index;
mod search;

pub use answer::answer;
pub use delete::delete;
pub use embedded::{IndexTarget, embedded};
pub use index::{index, store_chunks};
pub use search::search;
