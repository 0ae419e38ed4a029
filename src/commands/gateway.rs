//! `domain-actions gateway`: the HTTP/WebSocket front door against an existing NATS, on
//! `--addr` (or `DA_HTTP_ADDR`, default 127.0.0.1:8080). `dev` runs it too.

use platform::http::ApiKeys;
use shared::{Settings, TenantId};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::exit::{Failure, Outcome, connect};

/// The address the gateway listens on unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// Flags of `gateway`.
#[derive(clap::Args)]
pub struct Args {
    /// Where to listen.
    #[arg(long, env = "DA_HTTP_ADDR", default_value = DEFAULT_ADDR)]
    pub addr: String,
}

/// Serves until a signal.
pub async fn run(url: &str, args: Args) -> Outcome {
    let shutdown = shared::shutdown::on_signal();
    let listener = bind(&args.addr).await?;
    serve(url, listener, shutdown).await
}

/// Binds `addr`, with a clear message if it is taken.
pub async fn bind(addr: &str) -> Result<TcpListener, Failure> {
    TcpListener::bind(addr).await.map_err(|err| {
        Failure::runtime(format!(
            "listening on {addr}: {err} (set DA_HTTP_ADDR to another address)"
        ))
    })
}

/// Builds the gateway and serves it on `listener` until `shutdown`.
pub async fn serve(url: &str, listener: TcpListener, shutdown: CancellationToken) -> Outcome {
    let settings = Settings::from_env().map_err(Failure::usage)?;
    let client = connect(url).await?;
    let app = gateway::router(client, &settings, shutdown.clone())
        .await
        .map_err(Failure::runtime)?;
    let addr = listener.local_addr().map_err(Failure::runtime)?;
    tracing::info!(%addr, "gateway listening");
    gateway::serve::serve(listener, app, shutdown)
        .await
        .map_err(Failure::runtime)
}

/// The development API key (tenant `dev`), kept in `<data dir>/dev-api-key` so it stays the
/// same from one `dev` run to the next; created if missing or no longer valid.
pub async fn dev_key(url: &str, settings: &Settings) -> Result<String, Failure> {
    let client = connect(url).await?;
    let keys = ApiKeys::open(
        &async_nats::jetstream::new(client),
        settings.stream_replicas,
    )
    .await
    .map_err(Failure::runtime)?;
    let data_dir = &settings.data_dir;
    let path = data_dir.join("dev-api-key");
    if let Ok(saved) = std::fs::read_to_string(&path) {
        let saved = saved.trim().to_owned();
        if keys
            .verify(&saved)
            .await
            .map_err(Failure::runtime)?
            .is_some()
        {
            return Ok(saved);
        }
    }
    let tenant = TenantId::new("dev").map_err(Failure::runtime)?;
    let key = keys
        .create(&tenant, Some("dev"))
        .await
        .map_err(Failure::runtime)?;
    std::fs::create_dir_all(data_dir).map_err(Failure::runtime)?;
    std::fs::write(&path, &key)
        .map_err(|err| Failure::runtime(format!("writing {}: {err}", path.display())))?;
    Ok(key)
}
