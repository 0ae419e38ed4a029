//! [`Replies`]: rpc replies on the requesting tenant's own inboxes.
//!
//! A request of tenant `acme` carries the reply subject `_INBOX_acme.<connection>.<n>`, so
//! the rpc endpoint can check that its answer stays inside the tenant
//! ([`crate::subject::Inboxes`]) and, on a server where tenants log in, only `acme` could
//! ever read it. One subscription per tenant and connection (`_INBOX_acme.<connection>.*`)
//! carries every reply to that tenant's requests; each reply is handed to its waiting
//! request by its last token, as async-nats does for its own `_INBOX.` requests.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::{Client, HeaderMap, Message, StatusCode};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::oneshot;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::action::TenantId;
use crate::subject;

/// Requests waiting for their reply, by the reply subject's last token.
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Message>>>>;

/// Why a request got no reply.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReplyError {
    /// The server says nobody listens on the subject.
    #[error("no responders")]
    NoResponders,
    /// No reply within the timeout.
    #[error("timed out")]
    TimedOut,
    /// The connection failed.
    #[error("{0}")]
    Nats(String),
}

/// The tenant reply inboxes of one connection.
#[derive(Debug)]
pub(crate) struct Replies {
    client: Client,
    /// Unique per connection, so two processes' inboxes never overlap.
    connection: String,
    pending: Pending,
    next: AtomicU64,
    /// Tenants whose inbox subscription is up.
    subscribed: Mutex<HashSet<TenantId>>,
    /// Serialises subscribing, so a tenant's first requests make one subscription.
    subscribing: tokio::sync::Mutex<()>,
    /// Stops the subscription readers when the publisher goes away.
    _stop: DropGuard,
    stop: CancellationToken,
}

impl Replies {
    /// Reply inboxes on `client`.
    pub fn new(client: Client) -> Self {
        let stop = CancellationToken::new();
        Self {
            client,
            connection: uuid::Uuid::new_v4().simple().to_string(),
            pending: Pending::default(),
            next: AtomicU64::new(1),
            subscribed: Mutex::default(),
            subscribing: tokio::sync::Mutex::new(()),
            _stop: stop.clone().drop_guard(),
            stop,
        }
    }

    /// Publishes a request of `tenant` to `subject` and waits up to `timeout` for its reply.
    pub async fn request(
        &self,
        tenant: &TenantId,
        subject: String,
        headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Message, ReplyError> {
        self.subscribe(tenant).await?;
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        self.lock().insert(token, sender);
        let reply = format!(
            "{}{}.{token}",
            subject::tenant_inbox_prefix(tenant),
            self.connection
        );
        let waited = async {
            self.client
                .publish_with_reply_and_headers(subject, reply, headers, body)
                .await
                .map_err(|err| ReplyError::Nats(err.to_string()))?;
            tokio::time::timeout(timeout, receiver)
                .await
                .map_err(|_| ReplyError::TimedOut)?
                .map_err(|_| ReplyError::Nats("the connection closed".into()))
        }
        .await;
        if waited.is_err() {
            self.lock().remove(&token);
        }
        let message = waited?;
        if message.status == Some(StatusCode::NO_RESPONDERS) {
            return Err(ReplyError::NoResponders);
        }
        Ok(message)
    }

    /// Makes sure `_INBOX_<tenant>.<connection>.*` is subscribed and read.
    async fn subscribe(&self, tenant: &TenantId) -> Result<(), ReplyError> {
        if self.is_subscribed(tenant) {
            return Ok(());
        }
        let _one_at_a_time = self.subscribing.lock().await;
        if self.is_subscribed(tenant) {
            return Ok(());
        }
        let filter = format!(
            "{}{}.*",
            subject::tenant_inbox_prefix(tenant),
            self.connection
        );
        let mut subscription = self
            .client
            .subscribe(filter)
            .await
            .map_err(|err| ReplyError::Nats(err.to_string()))?;
        let (pending, stop) = (self.pending.clone(), self.stop.clone());
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    _ = stop.cancelled() => break,
                    message = subscription.next() => match message {
                        Some(message) => message,
                        None => break,
                    },
                };
                let token = message
                    .subject
                    .rsplit('.')
                    .next()
                    .and_then(|t| t.parse().ok());
                let waiting = token.and_then(|token: u64| {
                    pending
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&token)
                });
                if let Some(waiting) = waiting {
                    let _ = waiting.send(message);
                }
            }
        });
        self.subscribed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(tenant.clone());
        Ok(())
    }

    fn is_subscribed(&self, tenant: &TenantId) -> bool {
        self.subscribed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(tenant)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Message>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
