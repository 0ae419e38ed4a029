//! `streams apply|ls`: apply the stream and consumer definitions, and see what they hold.

use std::path::PathBuf;

use futures::TryStreamExt;
use shared::streams::Definitions;

use crate::exit::{Failure, Outcome, connect};

/// Subcommands of `streams`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Create or update every stream and consumer (idempotent).
    Apply {
        /// Read definitions from this directory (laid out like nats/) instead of the built-in ones.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Replicas per stream (1 on one server, 3 on a cluster); default: the
        /// DA_STREAM_REPLICAS setting, else 1.
        #[arg(long)]
        replicas: Option<usize>,
    },
    /// List streams with their messages, bytes and consumers (pending, waiting for ack, redelivered).
    Ls,
}

/// Runs a `streams` subcommand.
pub async fn run(url: &str, command: Command) -> Outcome {
    let client = connect(url).await?;
    let js = async_nats::jetstream::new(client);
    match command {
        Command::Apply { dir, replicas } => {
            let replicas = match replicas {
                Some(replicas) => replicas,
                None => {
                    shared::Settings::from_env()
                        .map_err(Failure::usage)?
                        .stream_replicas
                }
            };
            let definitions = match dir {
                Some(dir) => Definitions::from_dir(&dir),
                None => Definitions::built_in(),
            }
            .and_then(|d| d.for_domains(&crate::services::domains()))
            .map_err(Failure::usage)?
            .with_replicas(replicas);
            definitions.apply(&js).await.map_err(Failure::runtime)?;
            for def in &definitions.streams {
                let consumers: Vec<&str> =
                    def.consumers.iter().map(shared::streams::durable).collect();
                println!("applied {} ({})", def.stream.name, consumers.join(", "));
            }
        }
        Command::Ls => {
            let mut streams = js.streams();
            println!(
                "{:<12} {:>10} {:>12} {:>9}  consumer: pending / ack pending / redelivered",
                "stream", "messages", "bytes", "consumers"
            );
            while let Some(info) = streams.try_next().await.map_err(Failure::runtime)? {
                let state = &info.state;
                println!(
                    "{:<12} {:>10} {:>12} {:>9}",
                    info.config.name, state.messages, state.bytes, state.consumer_count
                );
                let stream = js
                    .get_stream(&info.config.name)
                    .await
                    .map_err(Failure::runtime)?;
                let mut consumers = stream.consumers();
                while let Some(c) = consumers.try_next().await.map_err(Failure::runtime)? {
                    println!(
                        "    {:<28} {:>8} / {:>6} / {:>6}",
                        c.name, c.num_pending, c.num_ack_pending, c.num_redelivered
                    );
                }
            }
        }
    }
    Ok(())
}
