//! `domain-actions dev`: the whole system on one machine with nothing configured.
//!
//! If no server answers at `NATS_URL`, it starts the project's nats-server 2.15.1 with
//! `nats/server.conf` on that port and keeps its store under `DA_DATA_DIR` (`.data/nats`),
//! so actions survive a restart of `dev`. Then it runs every service until Ctrl-C.

use std::time::Duration;

use shared::Settings;
use shared::nats_server::{self, LocalServer, ServerOptions};

use crate::exit::{Failure, Outcome};
use crate::services;

/// Flags of `dev`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs everything until Ctrl-C.
pub async fn run(url: &str, _args: Args) -> Outcome {
    let settings = Settings::from_env().map_err(Failure::usage)?;
    let shutdown = shared::shutdown::on_signal();
    let server = if nats_server::answers(url, Duration::from_millis(500)).await {
        tracing::info!(%url, "using the NATS server that answers there");
        None
    } else {
        let port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
            .ok_or_else(|| {
                Failure::usage(format!(
                    "NATS_URL {url} has no port to start a local server on"
                ))
            })?;
        let data = settings.data_dir.join("nats");
        let server = LocalServer::start(ServerOptions::single_node(&data, Some(port)))
            .await
            .map_err(Failure::runtime)?;
        tracing::info!(url = server.url(), store = %settings.data_dir.join("nats/store").display(), "started nats-server");
        Some(server)
    };
    let url = server
        .as_ref()
        .map_or(url.to_owned(), |s| s.url().to_owned());
    let names: Vec<String> = services::ALL.iter().map(|s| s.to_string()).collect();
    let addr =
        std::env::var("DA_HTTP_ADDR").unwrap_or_else(|_| super::gateway::DEFAULT_ADDR.to_owned());
    let listener = super::gateway::bind(&addr).await?;
    let key = super::gateway::dev_key(&url, &settings).await?;
    let http = format!(
        "http://{}",
        listener.local_addr().map_err(Failure::runtime)?
    );
    let gateway = tokio::spawn({
        let (url, shutdown) = (url.clone(), shutdown.clone());
        async move { super::gateway::serve(&url, listener, shutdown).await }
    });
    tokio::spawn(default_agent(url.clone()));
    print_banner(&url, &names, &http, &key);
    // The gateway's /metrics shows the workers' metrics too; they bind to the recorder at start.
    shared::metrics::install();
    let outcome = super::worker::run_until(&url, &names, shutdown.clone()).await;
    shutdown.cancel();
    if let Ok(Err(failure)) = gateway.await {
        tracing::warn!(error = %failure, "gateway");
    }
    if let Some(server) = server {
        server.stop().await;
    }
    outcome
}

/// Creates the agent `assistant` of tenant `dev` (retrieval over every collection) once the
/// execution service answers, unless it exists (a developer's edits are kept).
async fn default_agent(url: String) {
    use execution::actions::{AgentList, AgentPut};
    let attempt = async {
        let client = crate::exit::connect(&url)
            .await
            .map_err(|f| f.to_string())?;
        let domain = shared::Domain::new("execution").map_err(|e| e.to_string())?;
        shared::worker::wait_until_serving(&client, &domain, Duration::from_secs(60)).await;
        let publisher = shared::publish::Publisher::new(client);
        let tenant = shared::TenantId::new("dev").map_err(|e| e.to_string())?;
        let timeout = Duration::from_secs(10);
        // Listing, not getting: a missing agent is not an error worth a dead letter.
        let existing = publisher
            .request(&shared::Action::new(tenant.clone(), AgentList {}), timeout)
            .await
            .map_err(|e| e.to_string())?;
        if existing.agents.iter().any(|a| a.agent_id == "assistant") {
            return Ok(());
        }
        let agent = serde_json::from_value(serde_json::json!({
            "agent_id": "assistant",
            "name": "Assistant",
            "system_prompt": "You answer questions about the documents uploaded to this workspace.",
        }))
        .map_err(|e| e.to_string())?;
        publisher
            .request(&shared::Action::new(tenant, AgentPut { agent }), timeout)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    if let Err(err) = attempt.await {
        tracing::warn!(error = %err, "could not create the default agent");
    }
}

fn print_banner(url: &str, services: &[String], http: &str, key: &str) {
    println!(
        r#"
Domain Actions is running
  web page  {http}
  API key   {key}   (tenant dev)
  NATS      {url}
  services  {}

Try it (from another terminal):
  domain-actions request echo.ping --tenant acme --data '{{"hello":"world"}}'
  domain-actions request query.index --tenant acme --data '{{"collection":"notes","document_id":"cats","chunks":[{{"chunk_index":0,"text":"Cats sleep sixteen hours a day and eat fish."}}]}}'
  domain-actions request query.answer --tenant acme --data '{{"query":"How long do cats sleep?","collections":["notes"]}}'
  nats req echo.acme.rpc '{{"data":{{"hello":"world"}}}}' -H action_type:echo.ping
  curl -H 'Authorization: Bearer {key}' -F collection=notes -F file=@README.md {http}/v1/documents
  domain-actions tail 'dlq.>'

Ctrl-C stops it cleanly (in-flight actions finish first).
"#,
        services.join(", ")
    );
}
