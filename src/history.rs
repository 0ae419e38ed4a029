//! Reading what a stream stores, in order, without disturbing anyone: `replay` reads a
//! domain's actions (from `<DOMAIN>_HISTORY`, where the work queue `<DOMAIN>` republishes
//! each one as it is stored: [`Stored::republished`]) and `dlq` its dead letters through
//! here.
//!
//! An ordered consumer is ephemeral, unacknowledged and filtered by subject: it moves no
//! durable consumer's position and the server removes it when it goes quiet. Unless told to
//! follow, reading stops at the stream's last message as it was when reading began, so
//! messages published meanwhile (a `replay --republish` writing into the stream it reads)
//! never make it run forever.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig};
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::{self, Message};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::commands::tail;
use crate::exit::Failure;

/// Where reading starts.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    /// The oldest message still stored.
    All,
    /// The first message stored at or after this time.
    Time(OffsetDateTime),
}

/// Which part of the history to read.
#[derive(Debug, Clone)]
pub struct Range {
    /// Where to start.
    pub start: Start,
    /// Stop at the first message stored after this time.
    pub until: Option<OffsetDateTime>,
    /// Keep waiting for new messages instead of stopping at the end.
    pub follow: bool,
}

impl Range {
    /// Everything stored now.
    pub fn everything() -> Self {
        Self {
            start: Start::All,
            until: None,
            follow: false,
        }
    }
}

/// One stored message and where it is stored.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The stream holding it.
    pub stream: String,
    /// Its sequence there.
    pub sequence: u64,
    /// When the server stored it.
    pub time: OffsetDateTime,
    /// The subject it was published to.
    pub subject: String,
    /// Its headers (empty when it had none).
    pub headers: HeaderMap,
    /// Its body.
    pub payload: Bytes,
}

/// The headers the server adds to a republished message.
const REPUBLISHED_STREAM: &str = "Nats-Stream";
const REPUBLISHED_SUBJECT: &str = "Nats-Subject";
const REPUBLISHED_SEQUENCE: &str = "Nats-Sequence";
const REPUBLISH_HEADERS: [&str; 5] = [
    REPUBLISHED_STREAM,
    REPUBLISHED_SUBJECT,
    REPUBLISHED_SEQUENCE,
    "Nats-Time-Stamp",
    "Nats-Last-Sequence",
];

impl Stored {
    /// A message read back by sequence (`STREAM.MSG.GET`).
    pub fn from_get(stream: &str, message: StreamMessage) -> Self {
        Self {
            stream: stream.to_owned(),
            sequence: message.sequence,
            time: message.time,
            subject: message.subject.to_string(),
            headers: message.headers,
            payload: message.payload,
        }
    }

    /// A message the server republished from another stream (`republish` in the stream's
    /// definition) as it was there: its original subject, and its headers without the
    /// `Nats-Stream`, `Nats-Subject`, `Nats-Sequence`, `Nats-Time-Stamp` and
    /// `Nats-Last-Sequence` the server added, and the stream and sequence it was stored at
    /// first (so `replay` names `ECHO:12`, where the worker took it from, not its place in
    /// the history stream).
    pub fn republished(mut self) -> Self {
        let header = |stored: &Self, name: &str| stored.header(name).map(str::to_owned);
        if let Some(subject) = header(&self, REPUBLISHED_SUBJECT) {
            self.subject = subject;
        }
        let mut kept = HeaderMap::new();
        for (name, values) in self.headers.iter() {
            if REPUBLISH_HEADERS.contains(&name.as_ref()) {
                continue;
            }
            for value in values {
                kept.append(name.clone(), value.clone());
            }
        }
        if let Some(stream) = header(&self, REPUBLISHED_STREAM) {
            self.stream = stream;
        }
        if let Some(sequence) = header(&self, REPUBLISHED_SEQUENCE).and_then(|s| s.parse().ok()) {
            self.sequence = sequence;
        }
        self.headers = kept;
        self
    }

    /// The value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.as_str())
    }

    /// The action type from the `action_type` header, else from the body.
    pub fn action_type(&self) -> Option<String> {
        if let Some(t) = self.header(shared::headers::ACTION_TYPE) {
            return Some(t.to_owned());
        }
        let body: Value = serde_json::from_slice(&self.payload).ok()?;
        body.get("action_type")?.as_str().map(str::to_owned)
    }

    /// When it was stored, as RFC 3339.
    pub fn time_text(&self) -> String {
        self.time
            .format(&Rfc3339)
            .unwrap_or_else(|_| self.time.to_string())
    }

    /// The message as one JSON object: stream, sequence, time, subject, headers, body (as
    /// JSON when it is, as text otherwise, as `tail` prints it).
    pub fn to_json(&self) -> Value {
        json!({
            "stream": self.stream,
            "sequence": self.sequence,
            "time": self.time_text(),
            "subject": self.subject,
            "headers": tail::headers_json(Some(&self.headers)),
            "body": tail::body_json(&self.payload),
        })
    }
}

/// How long a read that does not follow waits for its next message before asking the
/// stream whether one is still there (messages deleted or expired meanwhile end the read
/// early instead of leaving it waiting for them).
const IDLE_CHECK: Duration = Duration::from_secs(2);

/// An ordered read of one stream's messages on a subject filter.
pub struct History {
    stream: String,
    handle: jetstream::stream::Stream,
    filter: String,
    /// The last sequence read, or before the first one to read when known.
    last_seen: Option<u64>,
    messages: Option<Ordered>,
    /// The ordered consumer's name, to remove it when done.
    consumer: Option<String>,
    /// The last sequence to read when not following.
    end: Option<u64>,
    until: Option<OffsetDateTime>,
    follow: bool,
}

impl History {
    /// Starts reading `stream`'s messages on `filter` over `range`.
    pub async fn open(
        js: &jetstream::Context,
        stream: &str,
        filter: String,
        range: &Range,
    ) -> Result<Self, Failure> {
        let mut handle = js.get_stream(stream).await.map_err(|err| {
            Failure::runtime(format!(
                "cannot open stream {stream}: {err} (run `domain-actions streams apply`)"
            ))
        })?;
        let last = handle
            .info()
            .await
            .map_err(|err| Failure::runtime(format!("stream {stream}: {err}")))?
            .state
            .last_sequence;
        let end = (!range.follow).then_some(last);
        let last_seen = match range.start {
            Start::All => Some(0),
            Start::Time(_) => None,
        };
        let mut reader = Self {
            stream: stream.to_owned(),
            handle: handle.clone(),
            filter: filter.clone(),
            last_seen,
            messages: None,
            consumer: None,
            end,
            until: range.until,
            follow: range.follow,
        };
        let deliver_policy = match range.start {
            Start::All => DeliverPolicy::All,
            Start::Time(start_time) => DeliverPolicy::ByStartTime { start_time },
        };
        let config = OrderedConfig {
            filter_subject: filter,
            deliver_policy,
            ..Default::default()
        };
        let consumer = handle
            .create_consumer(config)
            .await
            .map_err(|err| Failure::runtime(format!("cannot read stream {stream}: {err}")))?;
        reader.consumer = Some(consumer.cached_info().name.clone());
        if range.follow || consumer.cached_info().num_pending > 0 {
            reader.messages =
                Some(consumer.messages().await.map_err(|err| {
                    Failure::runtime(format!("cannot read stream {stream}: {err}"))
                })?);
        } else {
            reader.finish().await?;
        }
        Ok(reader)
    }

    /// The next message, or `None` at the end of the range.
    pub async fn next(&mut self) -> Result<Option<Stored>, Failure> {
        // Taken while waiting (so the stream can be asked meanwhile); put back to go on.
        let Some(mut messages) = self.messages.take() else {
            return Ok(None);
        };
        let next = if self.follow {
            messages.next().await
        } else {
            loop {
                match tokio::time::timeout(IDLE_CHECK, messages.next()).await {
                    Ok(next) => break next,
                    Err(_) if self.more_stored().await? => continue,
                    Err(_) => return self.finish().await,
                }
            }
        };
        self.messages = Some(messages);
        let message: Message = match next {
            None => return self.finish().await,
            Some(message) => message
                .map_err(|err| Failure::runtime(format!("reading {}: {err}", self.stream)))?,
        };
        let info = message
            .info()
            .map_err(|err| Failure::runtime(format!("reading {}: {err}", self.stream)))?;
        let (sequence, time, pending) = (info.stream_sequence, info.published, info.pending);
        if self.end.is_some_and(|end| sequence > end) || self.until.is_some_and(|t| time > t) {
            return self.finish().await;
        }
        self.last_seen = Some(sequence);
        if !self.follow && pending == 0 {
            self.finish().await?;
        }
        let message = message.message;
        Ok(Some(Stored {
            stream: self.stream.clone(),
            sequence,
            time,
            subject: message.subject.to_string(),
            headers: message.headers.unwrap_or_default(),
            payload: message.payload,
        }))
    }

    /// Whether the stream still stores a message on the filter after the last one read and
    /// inside the range (when unknown, as before the first message of a read by time: yes).
    async fn more_stored(&self) -> Result<bool, Failure> {
        let Some(last) = self.last_seen else {
            return Ok(true);
        };
        match self
            .handle
            .get_first_raw_message_by_subject(&self.filter, last + 1)
            .await
        {
            Ok(message) => Ok(self.end.is_none_or(|end| message.sequence <= end)),
            Err(err) if err.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(false),
            Err(err) => Err(Failure::runtime(format!("reading {}: {err}", self.stream))),
        }
    }

    /// Stops reading and removes the consumer now rather than when the server would (after
    /// it has been idle a while), so `streams ls` does not show it meanwhile.
    async fn finish(&mut self) -> Result<Option<Stored>, Failure> {
        self.messages = None;
        if let Some(name) = self.consumer.take() {
            // Best effort: the server removes an idle ordered consumer by itself anyway.
            let _ = self.handle.delete_consumer(&name).await;
        }
        Ok(None)
    }
}

/// Parses `--since`/`--until`: RFC 3339 (`2026-01-01T12:00:00Z`) or a duration before now
/// (`10m`, `2h 30m`, `1day`).
pub fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    match humantime::parse_duration(text) {
        Ok(ago) => Ok(OffsetDateTime::now_utc() - ago),
        Err(_) => Err(format!(
            "{text:?} is neither an RFC 3339 time (2026-01-01T12:00:00Z) nor a duration before now (10m, 2h)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_a_duration_ago() {
        let at = parse_time("2026-01-01T12:00:00Z").unwrap();
        assert_eq!(at.year(), 2026);
        let before = OffsetDateTime::now_utc();
        let ago = parse_time("10m").unwrap();
        let after = OffsetDateTime::now_utc();
        let ten = time::Duration::minutes(10);
        assert!(before - ten <= ago && ago <= after - ten);
        assert!(parse_time("yesterday-ish").is_err());
    }
}
