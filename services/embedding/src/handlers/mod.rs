//! One file per handler.

mod generate;

pub use generate::generate;
