//! `replay <domain>`: read a domain's stored actions back, by time or sequence, filtered by
//! tenant and action type; print them, send them again, or run a local handler over them.
//!
//! History is read through an ordered consumer (see [`crate::history`]), so the services'
//! durable consumers are never moved and replaying is safe while they run.

use std::time::Instant;

use serde_json::json;
use shared::action::{ResultAddress, decode, derived_id};
use shared::context::Ctx;
use shared::subject::{self, Channel};
use shared::{ActionResult, ActionType, Dispatcher, Domain, Publisher, Settings, TenantId};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::exit::{Failure, Outcome, connect};
use crate::history::{History, Range, Start, Stored, parse_time};
use crate::services;

/// Flags of `replay`.
#[derive(clap::Args)]
#[command(after_help = "\
Reads <domain>.<tenant or *>.actions from the domain's history stream (ECHO_HISTORY for \
echo, where the ECHO work queue republishes every action it stores) with an ordered \
consumer, which moves no service's durable consumer. Sequences (--from-seq, --to-seq, \
the output's stream and sequence) are those of the domain's stream, where each action was \
stored. Stops at the last action stored when it started (or at --until / --to-seq) unless \
--follow.

Output: one JSON line per action {stream, sequence, time, subject, headers, body}. \
--republish prints {replayed_from, action_id, stream, sequence} per action sent; --handle \
prints {replayed_from, result} per action, result being the result action the service \
would have sent.")]
pub struct Args {
    /// The domain whose history to read, e.g. echo.
    #[arg(value_parser = |s: &str| Domain::new(s))]
    pub domain: Domain,
    /// Only this tenant's actions.
    #[arg(long, short, value_parser = |s: &str| TenantId::new(s))]
    pub tenant: Option<TenantId>,
    /// Only actions of this type (repeat for several), e.g. echo.ping.
    #[arg(long = "action-type", value_parser = |s: &str| ActionType::new(s))]
    pub action_types: Vec<ActionType>,
    /// Start at this time: RFC 3339 (2026-01-01T12:00:00Z) or a duration ago (10m, 2h).
    #[arg(long, value_parser = parse_time, conflicts_with = "from_seq")]
    pub since: Option<OffsetDateTime>,
    /// Stop at the first action stored after this time (RFC 3339 or a duration ago).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<OffsetDateTime>,
    /// Start at this stream sequence.
    #[arg(long)]
    pub from_seq: Option<u64>,
    /// Stop after this stream sequence.
    #[arg(long)]
    pub to_seq: Option<u64>,
    /// Keep waiting for new actions after the end of history (until Ctrl-C).
    #[arg(long, conflicts_with_all = ["until", "to_seq", "republish"])]
    pub follow: bool,
    /// Send each action again to its subject with a fresh action id (and Nats-Msg-Id) and a
    /// `replayed_from: <stream>:<sequence>` header, for the running service to handle again.
    /// Actions that do not decode are skipped (and said so on stderr).
    #[arg(long, conflicts_with = "handle")]
    pub republish: bool,
    /// Run this service's handlers here over each action and print the result; nothing is
    /// published. Handlers get no NATS connection: a follow-up action or rpc they would
    /// send fails with `unavailable`.
    #[arg(long, value_name = "SERVICE",
          value_parser = clap::builder::PossibleValuesParser::new(services::ALL))]
    pub handle: Option<String>,
}

/// What to do with each action read.
enum Mode {
    Print,
    Republish(Publisher),
    Handle(Box<Dispatcher>),
}

/// Reads the history and prints, republishes or handles each matching action.
pub async fn run(url: &str, args: Args) -> Outcome {
    for action_type in &args.action_types {
        if action_type.domain() != args.domain {
            return Err(Failure::usage(format!(
                "--action-type {action_type} is not of domain {}",
                args.domain
            )));
        }
    }
    if let (Some(since), Some(until)) = (args.since, args.until)
        && since > until
    {
        return Err(Failure::usage("--since is after --until"));
    }
    if let (Some(from), Some(to)) = (args.from_seq, args.to_seq)
        && from > to
    {
        return Err(Failure::usage("--from-seq is after --to-seq"));
    }
    let client = connect(url).await?;
    let mode = match (&args.handle, args.republish) {
        (Some(service), _) => {
            Mode::Handle(Box::new(handler(service, &args.domain, &client).await?))
        }
        (None, true) => Mode::Republish(Publisher::new(client.clone())),
        (None, false) => Mode::Print,
    };
    let js = async_nats::jetstream::new(client.clone());
    let filter = match &args.tenant {
        Some(tenant) => subject::actions(&args.domain, tenant),
        None => subject::any_tenant(&args.domain, Channel::Actions),
    };
    let filter = format!("{HISTORY_PREFIX}{filter}");
    // --from-seq and --to-seq are sequences of the domain's stream, where each action was
    // stored and the worker took it from; the history stream numbers its copies its own
    // way, so they are applied to each copy's original sequence here.
    let range = Range {
        start: match args.since {
            Some(time) => Start::Time(time),
            None => Start::All,
        },
        until: args.until,
        follow: args.follow,
    };
    let stream = format!("{}_HISTORY", args.domain.stream_name());
    let mut history = History::open(&js, &stream, filter, &range).await?;
    let shutdown = shared::shutdown::on_signal();
    let mut skipped = 0usize;
    loop {
        let stored = tokio::select! {
            _ = shutdown.cancelled() => break,
            stored = history.next() => match stored? { Some(s) => s.republished(), None => break },
        };
        if args.from_seq.is_some_and(|from| stored.sequence < from) {
            continue;
        }
        if args.to_seq.is_some_and(|to| stored.sequence > to) {
            break;
        }
        if !args.action_types.is_empty()
            && !stored
                .action_type()
                .is_some_and(|t| args.action_types.iter().any(|a| a.as_str() == t))
        {
            continue;
        }
        match &mode {
            Mode::Print => println!("{}", stored.to_json()),
            Mode::Republish(publisher) => {
                if !republish(publisher, &stored).await? {
                    skipped += 1;
                }
            }
            Mode::Handle(dispatcher) => handle(dispatcher, &stored).await,
        }
    }
    if skipped > 0 {
        eprintln!("{skipped} stored message(s) skipped: they do not decode as actions");
    }
    Ok(())
}

/// The dispatcher of `service`, which must serve `domain`.
async fn handler(
    service: &str,
    domain: &Domain,
    client: &async_nats::Client,
) -> Result<Dispatcher, Failure> {
    // A service is named after its domain: refuse a mismatch before opening its model or store.
    if service != domain.as_str() {
        return Err(Failure::usage(format!(
            "--handle {service} serves domain {service}, not {domain}"
        )));
    }
    let settings = Settings::from_env().map_err(Failure::usage)?;
    let dispatcher = services::dispatcher(service, &settings, client)
        .await
        .map_err(|err| Failure::runtime(format!("starting {service}: {err}")))?
        .ok_or_else(|| Failure::usage(format!("unknown service {service:?}")))?;
    if dispatcher.domain() != domain {
        return Err(Failure::usage(format!(
            "--handle {service} serves domain {}, not {domain}",
            dispatcher.domain()
        )));
    }
    Ok(dispatcher)
}

/// The `<stream>:<sequence>` a replayed action names in its `replayed_from` header.
fn origin(stored: &Stored) -> String {
    format!("{}:{}", stored.stream, stored.sequence)
}

/// Decodes a stored action as a worker would (the same fallback id for one without an id).
fn decoded(stored: &Stored) -> Result<shared::action::Received, shared::action::Rejection> {
    decode(
        &stored.subject,
        Some(&stored.headers),
        &stored.payload,
        derived_id(&[stored.stream.as_bytes(), &stored.sequence.to_be_bytes()]),
    )
}

/// What `<DOMAIN>` prefixes to an action's subject when it republishes it into
/// `<DOMAIN>_HISTORY` (nats/template/stream.json).
const HISTORY_PREFIX: &str = "history.";

/// Sends `stored` again under a fresh id; false when it does not decode (skipped).
async fn republish(publisher: &Publisher, stored: &Stored) -> Result<bool, Failure> {
    let received = match decoded(stored) {
        Ok(received) => received,
        Err(rejection) => {
            eprintln!("skipped {}: {}", origin(stored), rejection.error);
            return Ok(false);
        }
    };
    let mut action = received.action;
    action.action_id = uuid::Uuid::now_v7();
    let (mut headers, body) = shared::publish::encode(&action).map_err(Failure::runtime)?;
    headers.insert(shared::headers::REPLAYED_FROM, origin(stored).as_str());
    let ack = publisher
        .publish_stored(received.subject.to_string(), headers, body)
        .await
        .map_err(Failure::runtime)?;
    let line = json!({
        "replayed_from": origin(stored),
        "action_id": action.action_id,
        "stream": ack.stream,
        "sequence": ack.sequence,
    });
    println!("{line}");
    Ok(true)
}

/// Runs the handler of `stored` here and prints the result it would have sent.
async fn handle(dispatcher: &Dispatcher, stored: &Stored) {
    let result = match decoded(stored) {
        Ok(received) => {
            let action = received.action;
            let address = ResultAddress::from(&action);
            let ctx = Ctx::for_action(&action, 1, None, CancellationToken::new());
            let started = Instant::now();
            let outcome = dispatcher.dispatch(action, ctx).await;
            let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let data = match outcome {
                Ok(output) => ActionResult::success(output, ms),
                Err(error) => ActionResult::failure(error, ms),
            };
            serde_json::to_value(address.result(data))
        }
        Err(rejection) => match rejection.address {
            Some(address) => serde_json::to_value(
                address.result(ActionResult::<()>::failure(rejection.error, 0)),
            ),
            None => Ok(json!({ "error": rejection.error })),
        },
    };
    let result = result.unwrap_or_else(|err| json!({ "error": err.to_string() }));
    println!(
        "{}",
        json!({ "replayed_from": origin(stored), "result": result })
    );
}
