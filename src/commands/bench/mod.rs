//! `domain-actions bench` (placeholder until the benchmark lands).

use crate::exit::Outcome;

/// Flags of `bench`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs the benchmark.
pub async fn run(_url: &str, _args: Args) -> Outcome {
    Ok(())
}
