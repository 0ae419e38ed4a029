//! `tail <subject>`: print every message on a subject as a JSON line (subject, headers,
//! body), e.g. `tail 'dlq.>'` for dead letters or `tail 'echo.*.actions'` for actions.

use futures::StreamExt;
use serde_json::{Map, Value, json};

use crate::exit::{Failure, Outcome, connect};

/// Flags of `tail`.
#[derive(clap::Args)]
pub struct Args {
    /// Subject or wildcard, e.g. 'dlq.>' or 'orchestrator.acme.callbacks'.
    pub subject: String,
    /// Stop after this many messages.
    #[arg(long, short = 'n')]
    pub count: Option<usize>,
}

/// Prints messages until Ctrl-C (or `--count`).
pub async fn run(url: &str, args: Args) -> Outcome {
    if !is_wildcard(&args.subject) {
        return Err(Failure::usage(format!(
            "{:?} is not a subject",
            args.subject
        )));
    }
    let client = connect(url).await?;
    let mut messages = client
        .subscribe(args.subject.clone())
        .await
        .map_err(Failure::runtime)?;
    let mut seen = 0;
    let shutdown = shared::shutdown::on_signal();
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            message = messages.next() => match message { Some(m) => m, None => break },
        };
        println!("{}", line(&message));
        seen += 1;
        if args.count.is_some_and(|n| seen >= n) {
            break;
        }
    }
    Ok(())
}

fn is_wildcard(subject: &str) -> bool {
    !subject.is_empty()
        && subject
            .split('.')
            .all(|t| !t.is_empty() && !t.contains(' '))
}

/// One message as a JSON line: the body is shown as JSON when it is, as text otherwise.
pub fn line(message: &async_nats::Message) -> Value {
    json!({
        "subject": message.subject.as_str(),
        "headers": headers_json(message.headers.as_ref()),
        "body": body_json(&message.payload),
    })
}

/// Headers as a JSON object, a header's several values joined by `, `.
pub fn headers_json(headers: Option<&async_nats::HeaderMap>) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(h) = headers {
        for (name, values) in h.iter() {
            let values: Vec<&str> = values.iter().map(|v| v.as_str()).collect();
            out.insert(name.to_string(), json!(values.join(", ")));
        }
    }
    out
}

/// A body as JSON when it is, as text otherwise.
pub fn body_json(payload: &[u8]) -> Value {
    serde_json::from_slice::<Value>(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()))
}
