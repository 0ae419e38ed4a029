//! `keys create|ls|revoke`: manage the API keys HTTP callers authenticate with.
//!
//! `create` prints only the key on stdout (`KEY=$(domain-actions keys create --tenant acme)`);
//! the reminder that it is shown once goes to stderr.

use platform::http::{ApiKeys, ApiKeysError};
use shared::{Settings, TenantId};
use time::format_description::well_known::Rfc3339;

use crate::exit::{Failure, Outcome, connect};

/// Subcommands of `keys`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a key for a tenant and print it (only the key, on stdout). It is shown once.
    Create {
        /// The tenant every request with this key acts as (one token of [A-Za-z0-9_-]).
        #[arg(long)]
        tenant: String,
        /// What the key is for, shown by `keys ls` (e.g. "ci", "alice laptop").
        #[arg(long)]
        label: Option<String>,
    },
    /// List keys: hash prefix, tenant, creation time and label (never the keys).
    Ls,
    /// Revoke a key, given as the key itself, its hash, or a hash prefix from `keys ls`.
    Revoke {
        /// The key (da_…), its SHA-256 in hex, or at least 8 leading digits of that.
        key_or_hash: String,
    },
}

/// Runs a `keys` subcommand.
pub async fn run(url: &str, command: Command) -> Outcome {
    match command {
        Command::Create { tenant, label } => {
            // Checked before connecting, so a typo is reported as such even with NATS down.
            let tenant = TenantId::new(&tenant).map_err(Failure::usage)?;
            let key = open(url)
                .await?
                .create(&tenant, label.as_deref())
                .await
                .map_err(Failure::runtime)?;
            println!("{key}");
            eprintln!(
                "created an API key for tenant {tenant}; it is shown only this once (send it as Authorization: Bearer <key>)"
            );
        }
        Command::Ls => {
            let listed = open(url).await?.list().await.map_err(Failure::runtime)?;
            println!(
                "{:<14} {:<24} {:<22} label",
                "hash prefix", "tenant", "created"
            );
            for info in listed {
                // Whole seconds: enough to tell keys apart, and the columns stay aligned.
                let created = info
                    .created_at
                    .replace_nanosecond(0)
                    .unwrap_or(info.created_at);
                let created = created
                    .format(&Rfc3339)
                    .unwrap_or_else(|_| created.to_string());
                println!(
                    "{:<14} {:<24} {:<22} {}",
                    info.hash_prefix,
                    info.tenant_id.as_str(),
                    created,
                    info.label.as_deref().unwrap_or("")
                );
            }
        }
        Command::Revoke { key_or_hash } => match open(url).await?.revoke(&key_or_hash).await {
            Ok(true) => println!("revoked"),
            Ok(false) => return Err(Failure::runtime(format!("no such key: {key_or_hash}"))),
            Err(err @ (ApiKeysError::NotAReference(_) | ApiKeysError::Ambiguous(_))) => {
                return Err(Failure::usage(err));
            }
            Err(err) => return Err(Failure::runtime(err)),
        },
    }
    Ok(())
}

/// Connects and opens the key store (creating its bucket on a fresh server, with
/// `DA_STREAM_REPLICAS` copies).
async fn open(url: &str) -> Result<ApiKeys, Failure> {
    let settings = Settings::from_env().map_err(Failure::usage)?;
    let js = async_nats::jetstream::new(connect(url).await?);
    ApiKeys::open(&js, settings.stream_replicas)
        .await
        .map_err(Failure::runtime)
}
