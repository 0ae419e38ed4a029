//! `tenants set|show|list`: each tenant's limits (the `tenants` KV bucket, [`shared::quota`]).
//!
//! `set` changes only the limits it is given and keeps the rest of the record; `0` (or an
//! empty `--models`) puts a limit back to the operator's default (`DA_TENANT_*`). The
//! gateway and the workers read records at most a few seconds old, so a change applies
//! within seconds, without a restart. `show` prints JSON: the record, the limits in force
//! (record over defaults) and the LLM tokens used today.

use serde_json::json;
use shared::quota::limits::split_models;
use shared::quota::{TenantLimits, TenantsBucket};
use shared::{Settings, TenantId};

use crate::exit::{Failure, Outcome, connect};

/// Subcommands of `tenants`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Set limits of a tenant (only those given; 0 or an empty list: back to the default).
    Set {
        /// The tenant (one token of [A-Za-z0-9_-]).
        tenant: String,
        /// Requests per minute (HTTP under /v1/, and actions per worker).
        #[arg(long)]
        requests_per_minute: Option<u32>,
        /// Actions in flight at once on a worker's rpc path.
        #[arg(long)]
        concurrent: Option<u32>,
        /// LLM tokens per UTC day.
        #[arg(long)]
        tokens_per_day: Option<u64>,
        /// Bytes of document originals the tenant may keep stored (0: the default).
        #[arg(long)]
        stored_bytes: Option<u64>,
        /// Models an action may name, comma-separated ("" for the default list).
        #[arg(long)]
        models: Option<String>,
        /// A tier name, for people ("" removes it).
        #[arg(long)]
        tier: Option<String>,
    },
    /// Print a tenant's record, the limits in force and its LLM tokens used today, as JSON.
    Show {
        /// The tenant.
        tenant: String,
    },
    /// List the tenants with a record and their limits.
    List,
}

/// Runs a `tenants` subcommand.
pub async fn run(url: &str, command: Command) -> Outcome {
    let settings = Settings::from_env().map_err(Failure::usage)?;
    match command {
        Command::Set {
            tenant,
            requests_per_minute,
            concurrent,
            tokens_per_day,
            stored_bytes,
            models,
            tier,
        } => {
            // Checked before connecting, so a typo is reported as such even with NATS down.
            let tenant = TenantId::new(&tenant).map_err(Failure::usage)?;
            let given = [
                requests_per_minute.is_some(),
                concurrent.is_some(),
                tokens_per_day.is_some(),
                stored_bytes.is_some(),
                models.is_some(),
                tier.is_some(),
            ];
            if !given.contains(&true) {
                return Err(Failure::usage(
                    "nothing to set: give at least one of --requests-per-minute, --concurrent, --tokens-per-day, --stored-bytes, --models, --tier",
                ));
            }
            let bucket = open(url, &settings).await?;
            let mut record = bucket
                .limits(&tenant)
                .await
                .map_err(Failure::runtime)?
                .unwrap_or_default();
            let nonzero32 = |n: u32| (n > 0).then_some(n);
            let nonzero64 = |n: u64| (n > 0).then_some(n);
            if let Some(n) = requests_per_minute {
                record.requests_per_minute = nonzero32(n);
            }
            if let Some(n) = concurrent {
                record.concurrent = nonzero32(n);
            }
            if let Some(n) = tokens_per_day {
                record.tokens_per_day = nonzero64(n);
            }
            if let Some(n) = stored_bytes {
                record.stored_bytes = nonzero64(n);
            }
            if let Some(models) = models {
                record.models = split_models(&models);
            }
            if let Some(tier) = tier {
                record.tier = Some(tier.trim().to_owned()).filter(|t| !t.is_empty());
            }
            bucket
                .set_limits(&tenant, &record)
                .await
                .map_err(Failure::runtime)?;
            println!(
                "{}",
                pretty(&show(&settings, &bucket, &tenant, Some(record)).await?)
            );
        }
        Command::Show { tenant } => {
            let tenant = TenantId::new(&tenant).map_err(Failure::usage)?;
            let bucket = open(url, &settings).await?;
            let record = bucket.limits(&tenant).await.map_err(Failure::runtime)?;
            println!(
                "{}",
                pretty(&show(&settings, &bucket, &tenant, record).await?)
            );
        }
        Command::List => {
            let bucket = open(url, &settings).await?;
            let listed = bucket.list().await.map_err(Failure::runtime)?;
            println!(
                "{:<24} {:<10} {:>10} {:>10} {:>14} {:>14} models",
                "tenant", "tier", "req/min", "concurrent", "tokens/day", "stored bytes"
            );
            let number = |n: Option<u64>| n.map_or_else(|| "default".to_owned(), |n| n.to_string());
            for (tenant, record) in listed {
                println!(
                    "{:<24} {:<10} {:>10} {:>10} {:>14} {:>14} {}",
                    tenant.as_str(),
                    record.tier.as_deref().unwrap_or("-"),
                    number(record.requests_per_minute.map(u64::from)),
                    number(record.concurrent.map(u64::from)),
                    number(record.tokens_per_day),
                    number(record.stored_bytes),
                    if record.models.is_empty() {
                        "default".to_owned()
                    } else {
                        record.models.join(",")
                    }
                );
            }
        }
    }
    Ok(())
}

/// What `show` prints: the record (null without one), the limits in force, usage: tokens
/// today and bytes of documents stored.
async fn show(
    settings: &Settings,
    bucket: &TenantsBucket,
    tenant: &TenantId,
    record: Option<TenantLimits>,
) -> Result<serde_json::Value, Failure> {
    let effective = record.clone().unwrap_or_default().over(&settings.quota);
    let tokens = bucket
        .tokens_today(tenant)
        .await
        .map_err(Failure::runtime)?;
    let stored = bucket
        .stored_bytes(tenant)
        .await
        .map_err(Failure::runtime)?;
    Ok(json!({
        "tenant": tenant,
        "record": record,
        "limits": effective,
        "usage": {"tokens_today": tokens, "stored_bytes": stored},
    }))
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Connects and opens the `tenants` bucket (created on a fresh server, with
/// `DA_STREAM_REPLICAS` copies).
async fn open(url: &str, settings: &Settings) -> Result<TenantsBucket, Failure> {
    let js = async_nats::jetstream::new(connect(url).await?);
    TenantsBucket::open(&js, settings.stream_replicas)
        .await
        .map_err(Failure::runtime)
}
