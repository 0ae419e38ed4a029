//! Dead letters: the original message, republished to `dlq.<domain>.<tenant>` with headers
//! saying why, so nothing a worker gives up on is lost.

use async_nats::HeaderMap;
use bytes::Bytes;
use uuid::Uuid;

use crate::action::{ActionError, Domain, TenantId};
use crate::headers::{self, dlq};
use crate::publish::{PublishError, Publisher};
use crate::subject;

/// Where the original came from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A stored message delivered by a durable consumer.
    Stored {
        /// Its stream.
        stream: String,
        /// Its sequence in the stream.
        sequence: u64,
        /// How many times it was delivered.
        deliveries: u64,
        /// The consumer that gave up.
        consumer: String,
    },
    /// An rpc request (never stored).
    Rpc,
}

/// One message to dead-letter.
pub struct DeadLetter<'a> {
    /// Domain of the worker that gave up.
    pub domain: &'a Domain,
    /// Tenant of the original subject, if it had a valid one.
    pub tenant: Option<&'a TenantId>,
    /// The original subject.
    pub subject: &'a str,
    /// The original headers.
    pub headers: Option<&'a HeaderMap>,
    /// The original body, unchanged.
    pub body: Bytes,
    /// Why.
    pub error: &'a ActionError,
    /// Where it came from.
    pub origin: Origin,
}

impl DeadLetter<'_> {
    /// Publishes the dead letter and waits until the DLQ stream has stored it. A stored
    /// original gets the id `dlq-<stream>-<sequence>`, so dead-lettering it twice (a crash
    /// between this and the term) stores it once.
    /// Counts it in [`crate::metrics::DEAD_LETTERS`] once stored.
    pub async fn publish(self, publisher: &Publisher) -> Result<(), PublishError> {
        let (domain, tenant, reason) = (self.domain, self.tenant, self.error.code);
        let mut headers = self.headers.cloned().unwrap_or_default();
        headers.insert(dlq::REASON, self.error.code.as_str());
        headers.insert(dlq::ERROR, one_line(&self.error.message).as_str());
        headers.insert(dlq::SUBJECT, self.subject);
        let id = match &self.origin {
            Origin::Stored {
                stream,
                sequence,
                deliveries,
                consumer,
            } => {
                headers.insert(dlq::STREAM, stream.as_str());
                headers.insert(dlq::SEQUENCE, sequence.to_string().as_str());
                headers.insert(dlq::DELIVERIES, deliveries.to_string().as_str());
                headers.insert(dlq::CONSUMER, consumer.as_str());
                format!("dlq-{stream}-{sequence}")
            }
            Origin::Rpc => {
                headers.insert(dlq::STREAM, "rpc");
                headers.insert(dlq::DELIVERIES, "1");
                format!("dlq-rpc-{}", Uuid::now_v7())
            }
        };
        headers.insert(headers::MSG_ID, id.as_str());
        let to = subject::dead_letters(self.domain, self.tenant);
        let size_limit = publisher.client().max_payload();
        // The original fitted; if our headers push it over, keep the headers and cut nothing
        // silently: say so in the error header instead of the body.
        // The headers count too: a message with large headers and a body just under the
        // limit fitted, but not with ours added (`tests/poison/huge-header-near-max-payload.json`).
        let size = self.body.len() + crate::publish::header_size(&headers);
        let body = if size > size_limit {
            headers.insert(dlq::ERROR, "original body too large to keep beside dead-letter headers; see dlq_stream/dlq_sequence");
            Bytes::new()
        } else {
            self.body
        };
        publisher.publish_stored(to, headers, body).await?;
        crate::metrics::dead_lettered(domain, tenant, reason);
        Ok(())
    }
}

/// Header values cannot hold line breaks.
fn one_line(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    flat.chars().take(1000).collect()
}
