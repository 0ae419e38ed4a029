//! `domain-actions dev`: the whole system on one machine with nothing configured.
//!
//! If no server answers at `NATS_URL`, it starts the project's nats-server 2.15.1 with
//! `nats/server.conf` on that port and keeps its store under `DA_DATA_DIR` (`.data/nats`),
//! so actions survive a restart of `dev`. Then it runs every service until Ctrl-C.
//!
//! `dev --secure` starts the secured server instead (`nats/accounts.conf`: the services
//! log in to their own account, each example tenant to an account of its own), with
//! passwords generated once into `DA_DATA_DIR/secure-logins` (owner-only), and prints how a
//! tenant logs in with the `nats` CLI.

use std::time::Duration;

use platform::nats_server::{self, LocalServer, SECURED_TENANTS, SecuredLogins, ServerOptions};
use shared::Settings;

use crate::exit::{Failure, Outcome};
use crate::services;

/// Flags of `dev`.
#[derive(clap::Args)]
pub struct Args {
    /// Start the secured server (nats/accounts.conf): services and each tenant log in to
    /// accounts of their own; a tenant can reach only its own subjects.
    #[arg(long)]
    pub secure: bool,
}

/// Runs everything until Ctrl-C.
pub async fn run(url: &str, args: Args) -> Outcome {
    let settings = Settings::from_env().map_err(Failure::usage)?;
    let shutdown = shared::shutdown::on_signal();
    let logins = if args.secure {
        let path = settings.data_dir.join("secure-logins");
        let logins = SecuredLogins::load_or_create(&path)
            .map_err(|err| Failure::runtime(format!("{}: {err}", path.display())))?;
        Some(logins)
    } else {
        None
    };
    let server = if nats_server::answers(url, Duration::from_millis(500)).await {
        if args.secure {
            return Err(Failure::usage(format!(
                "--secure starts its own server, but one answers at {url}: stop it or set NATS_URL to a free port"
            )));
        }
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
        let options = match &logins {
            // Its own store: the secured server's streams belong to the services' account.
            Some(logins) => {
                ServerOptions::secured(&settings.data_dir.join("nats-secure"), Some(port), logins)
            }
            None => ServerOptions::single_node(&settings.data_dir.join("nats"), Some(port)),
        };
        let store = options.store_dir.clone();
        let server = LocalServer::start(options)
            .await
            .map_err(Failure::runtime)?;
        tracing::info!(url = server.url(), store = %store.display(), "started nats-server");
        Some(server)
    };
    let public_url = server
        .as_ref()
        .map_or(url.to_owned(), |s| s.url().to_owned());
    // The services log in as `services` on the secured server (so their results and
    // replies go only to tenant inboxes: DA_INBOXES follows the login).
    let url = match &logins {
        Some(logins) => logins.url_for("services", &public_url),
        None => public_url.clone(),
    };
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
    match &logins {
        Some(logins) => print_secure_banner(&public_url, &names, &http, &key, logins),
        None => print_banner(&url, &names, &http, &key),
    }
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

fn print_secure_banner(
    url: &str,
    services: &[String],
    http: &str,
    key: &str,
    logins: &SecuredLogins,
) {
    let tenants: Vec<String> = SECURED_TENANTS
        .iter()
        .map(|t| {
            format!(
                "  {t:<9} nats --server {url} --user {t} --password {}",
                logins.password(t).unwrap_or_default()
            )
        })
        .collect();
    let acme = logins.url_for("acme", url);
    println!(
        r#"
Domain Actions is running, secured (nats/accounts.conf; logins kept in DA_DATA_DIR/secure-logins)
  web page  {http}
  API key   {key}   (tenant dev)
  NATS      {url}   (services log in as `services`; each tenant to its own account)
  services  {}

Tenant logins (each reaches only its own subjects):
{}

Try it (from another terminal), as tenant acme:
  nats --server {url} --user acme --password {} req echo.acme.rpc '{{"data":{{"hello":"world"}}}}' -H action_type:echo.ping
  NATS_URL={acme} domain-actions request echo.ping --tenant acme --data '{{"hello":"world"}}'
  NATS_URL={acme} domain-actions publish echo.ping --tenant acme --data '{{"n":1}}'
and see what it cannot do:
  nats --server {url} --user acme --password {} req echo.globex.rpc '{{}}' -H action_type:echo.ping   # no responders

Ctrl-C stops it cleanly (in-flight actions finish first).
"#,
        services.join(", "),
        tenants.join("\n"),
        logins.password("acme").unwrap_or_default(),
        logins.password("acme").unwrap_or_default(),
    );
}
