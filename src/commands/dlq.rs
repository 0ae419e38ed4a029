//! `dlq ls|show|redrive`: the dead letters in the `DLQ` stream (`dlq.<domain>.<tenant>`):
//! list them with their reasons, show one whole, send chosen ones back to their subject.
//!
//! A dead letter is named by its DLQ stream sequence or by its id (`dlq-<stream>-<sequence>`
//! of the original, its `Nats-Msg-Id`).

use async_nats::HeaderMap;
use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream};
use bytes::Bytes;
use serde_json::{Map, Value, json};
use shared::action::derived_id;
use shared::headers::{self, dlq};
use shared::streams::DLQ_STREAM;
use shared::subject::{self, ActionSubject, Channel};
use shared::{Domain, ErrorCode, Publisher, TenantId};
use time::format_description::well_known::Rfc3339;

use crate::exit::{Failure, Outcome, connect};
use crate::history::{History, Range, Stored};

/// Which dead letters: by domain, tenant and reason.
#[derive(clap::Args, Clone)]
pub struct Filters {
    /// Only this domain's dead letters, e.g. echo.
    #[arg(long, value_parser = |s: &str| Domain::new(s))]
    pub domain: Option<Domain>,
    /// Only this tenant's.
    #[arg(long, short, value_parser = |s: &str| TenantId::new(s))]
    pub tenant: Option<TenantId>,
    /// Only those dead-lettered for this reason (an error code, e.g. handler_error).
    #[arg(long, value_parser = parse_reason)]
    pub reason: Option<ErrorCode>,
}

/// Subcommands of `dlq`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// List dead letters: sequence, id, time, original subject, action type, reason, error.
    Ls {
        #[command(flatten)]
        filters: Filters,
    },
    /// Print one dead letter whole (headers and body) as JSON.
    Show {
        /// Its DLQ stream sequence, or its id (dlq-<stream>-<sequence>).
        letter: String,
    },
    /// Send dead letters back to their original subject (the dlq_subject header).
    #[command(after_help = "\
Idempotent: each dead letter is published with a Nats-Msg-Id (and action_id) derived from \
the letter, so a repeat inside the stream's duplicate window is dropped by JetStream, and \
once the publish is acknowledged the letter is deleted from the DLQ. Redriving it again \
finds nothing and says so: one redrive, one re-processing.

The redriven action gets that new id (its result does not collide with the result already \
sent for the original) and a redriven_from: DLQ:<sequence> header; dlq_* headers are \
dropped. A dead rpc request is not redriven: nobody waits for its reply any more.")]
    Redrive {
        /// DLQ stream sequences or ids of the letters to send back.
        letters: Vec<String>,
        /// Every dead letter matching the filters instead of named ones.
        #[arg(long, conflicts_with = "letters")]
        all: bool,
        #[command(flatten)]
        filters: Filters,
    },
}

fn parse_reason(text: &str) -> Result<ErrorCode, String> {
    ErrorCode::ALL
        .into_iter()
        .find(|code| code.as_str() == text)
        .ok_or_else(|| {
            let known: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
            format!("{text:?} is not an error code ({})", known.join(", "))
        })
}

impl Filters {
    fn subject(&self) -> String {
        subject::dead_letters_filter(self.domain.as_ref(), self.tenant.as_ref())
    }

    fn matches(&self, letter: &Stored) -> bool {
        self.reason
            .is_none_or(|reason| letter.header(dlq::REASON) == Some(reason.as_str()))
    }

    fn any(&self) -> bool {
        self.domain.is_some() || self.tenant.is_some() || self.reason.is_some()
    }
}

/// Runs a `dlq` subcommand.
pub async fn run(url: &str, command: Command) -> Outcome {
    if let Command::Redrive {
        letters,
        all,
        filters,
    } = &command
    {
        if letters.is_empty() && !all {
            return Err(Failure::usage(
                "name the dead letters to redrive (sequences or ids), or pass --all",
            ));
        }
        if !letters.is_empty() && filters.any() {
            return Err(Failure::usage(
                "--domain, --tenant and --reason select letters with --all, not named ones",
            ));
        }
    }
    let client = connect(url).await?;
    let js = async_nats::jetstream::new(client.clone());
    let stream = js.get_stream(DLQ_STREAM).await.map_err(|err| {
        Failure::runtime(format!(
            "cannot open stream {DLQ_STREAM}: {err} (run `domain-actions streams apply`)"
        ))
    })?;
    match command {
        Command::Ls { filters } => {
            println!(
                "{:>6}  {:<24} {:<20} {:<28} {:<22} {:<20} error",
                "seq", "id", "time", "subject", "action_type", "reason"
            );
            for letter in read(&js, &filters).await? {
                println!("{}", row(&letter));
            }
        }
        Command::Show { letter } => {
            let letter = find(&js, &stream, &letter)
                .await?
                .ok_or_else(|| Failure::runtime(format!("no dead letter {letter} in the DLQ")))?;
            let text = serde_json::to_string_pretty(&letter.to_json()).map_err(Failure::runtime)?;
            println!("{text}");
        }
        Command::Redrive {
            letters,
            all,
            filters,
        } => {
            let publisher = Publisher::new(client);
            let mut chosen = Vec::new();
            if all {
                chosen = read(&js, &filters).await?;
                if chosen.is_empty() {
                    println!("no dead letters match");
                }
            }
            for name in &letters {
                match find(&js, &stream, name).await? {
                    Some(letter) => chosen.push(letter),
                    None => println!(
                        "{name}: not in the DLQ (already redriven, or never there); skipped"
                    ),
                }
            }
            let mut failed = 0;
            for letter in chosen {
                match redrive(&publisher, &stream, &letter).await {
                    Ok(line) => println!("{line}"),
                    Err(why) => {
                        failed += 1;
                        println!("DLQ:{}: not redriven: {why}", letter.sequence);
                    }
                }
            }
            if failed > 0 {
                return Err(Failure::runtime(format!(
                    "{failed} dead letter(s) not redriven"
                )));
            }
        }
    }
    Ok(())
}

/// Every dead letter matching `filters`, oldest first.
async fn read(
    js: &async_nats::jetstream::Context,
    filters: &Filters,
) -> Result<Vec<Stored>, Failure> {
    let mut history =
        History::open(js, DLQ_STREAM, filters.subject(), &Range::everything()).await?;
    let mut letters = Vec::new();
    while let Some(letter) = history.next().await? {
        if filters.matches(&letter) {
            letters.push(letter);
        }
    }
    Ok(letters)
}

/// The dead letter named `name`: a DLQ sequence, or an id looked for among the letters.
async fn find(
    js: &async_nats::jetstream::Context,
    stream: &Stream,
    name: &str,
) -> Result<Option<Stored>, Failure> {
    if let Ok(sequence) = name.parse::<u64>() {
        return match stream.get_raw_message(sequence).await {
            Ok(message) => Ok(Some(Stored::from_get(DLQ_STREAM, message))),
            Err(err) if err.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(err) => Err(Failure::runtime(format!(
                "reading DLQ sequence {sequence}: {err}"
            ))),
        };
    }
    if !name.starts_with("dlq-") {
        return Err(Failure::usage(format!(
            "{name:?} is neither a DLQ sequence nor a dead letter id (dlq-<stream>-<sequence>)"
        )));
    }
    let all = Filters {
        domain: None,
        tenant: None,
        reason: None,
    };
    let letters = read(js, &all).await?;
    Ok(letters
        .into_iter()
        .find(|letter| letter.header(headers::MSG_ID) == Some(name)))
}

/// One line of `dlq ls`.
fn row(letter: &Stored) -> String {
    let or_dash = |v: Option<&str>| v.unwrap_or("-").to_owned();
    let error: String = or_dash(letter.header(dlq::ERROR))
        .chars()
        .take(60)
        .collect();
    format!(
        "{:>6}  {:<24} {:<20} {:<28} {:<22} {:<20} {error}",
        letter.sequence,
        or_dash(letter.header(headers::MSG_ID)),
        seconds(letter),
        or_dash(letter.header(dlq::SUBJECT)),
        letter.action_type().unwrap_or_else(|| "-".into()),
        or_dash(letter.header(dlq::REASON)),
    )
}

/// When `letter` was stored, to the second (a column of `dlq ls`; `show` has it whole).
fn seconds(letter: &Stored) -> String {
    let time = letter.time.replace_nanosecond(0).unwrap_or(letter.time);
    time.format(&Rfc3339).unwrap_or_else(|_| letter.time_text())
}

/// Sends `letter` back to its subject, then deletes it from the DLQ; the line to print.
async fn redrive(
    publisher: &Publisher,
    stream: &Stream,
    letter: &Stored,
) -> Result<String, String> {
    let to = letter
        .header(dlq::SUBJECT)
        .ok_or("it has no dlq_subject header: its original subject is unknown")?;
    let parsed = ActionSubject::parse(to).map_err(|err| err.to_string())?;
    // A letter is stored under the tenant and domain it came from; one claiming to come
    // from elsewhere was not written by a worker (anyone who may publish to `dlq.…` could
    // otherwise have it republished, by us, as another tenant).
    let stored_under = subject::dead_letters(&parsed.domain, Some(&parsed.tenant));
    if letter.subject != stored_under {
        return Err(format!(
            "refused: it is stored on {} but claims to come from {to} (a letter of {} would be on {stored_under}); not sent",
            letter.subject, parsed.tenant
        ));
    }
    if parsed.channel == Channel::Rpc {
        return Err(format!(
            "it was an rpc request on {to}: nobody waits for its reply any more"
        ));
    }
    if letter.payload.is_empty() {
        return Err(
            "its body was not kept (too large); take it from dlq_stream/dlq_sequence".into(),
        );
    }
    let id = derived_id(&[
        b"redrive",
        letter.header(headers::MSG_ID).unwrap_or("").as_bytes(),
        &letter.sequence.to_be_bytes(),
    ]);
    let mut headers = HeaderMap::new();
    for (name, values) in letter.headers.iter() {
        let name: &str = name.as_ref();
        if name.starts_with("dlq_") || name.eq_ignore_ascii_case(headers::MSG_ID) {
            continue;
        }
        for value in values {
            headers.append(name, value.as_str());
        }
    }
    headers.insert(headers::MSG_ID, id.to_string().as_str());
    let origin = format!("{DLQ_STREAM}:{}", letter.sequence);
    headers.insert(headers::REDRIVEN_FROM, origin.as_str());
    let ack = publisher
        .publish_stored(
            to.to_owned(),
            headers,
            with_id(&letter.payload, &id.to_string()),
        )
        .await
        .map_err(|err| err.to_string())?;
    stream
        .delete_message(letter.sequence)
        .await
        .map_err(|err| format!("sent, but not deleted from the DLQ: {err}"))?;
    let line = json!({
        "redriven_from": origin,
        "subject": to,
        "action_id": id,
        "stream": ack.stream,
        "sequence": ack.sequence,
        "duplicate": ack.duplicate,
    });
    Ok(line.to_string())
}

/// The body with its `action_id` set to `id` when it is a JSON object; unchanged otherwise
/// (a body that never was an action goes back as it came, to be refused again).
fn with_id(body: &Bytes, id: &str) -> Bytes {
    match serde_json::from_slice::<Map<String, Value>>(body) {
        Ok(mut object) => {
            object.insert("action_id".into(), Value::String(id.to_owned()));
            serde_json::to_vec(&object).map_or_else(|_| body.clone(), Bytes::from)
        }
        Err(_) => body.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_error_codes() {
        assert_eq!(parse_reason("handler_error"), Ok(ErrorCode::HandlerError));
        assert!(parse_reason("nope").unwrap_err().contains("max_deliveries"));
    }

    #[test]
    fn the_body_gets_the_new_id() {
        let body = Bytes::from_static(br#"{"action_id":"old","data":{"x":1}}"#);
        let out: Value = serde_json::from_slice(&with_id(&body, "new")).unwrap();
        assert_eq!(out["action_id"], "new");
        assert_eq!(out["data"]["x"], 1);
        let junk = Bytes::from_static(b"not json");
        assert_eq!(with_id(&junk, "new"), junk);
    }
}
