//! Conversations: the turns of each session in the KV bucket `sessions`, under
//! `<tenant>.<session_id>`, so the next run of any instance sees what was said before.
//!
//! Only this service writes the bucket. A session lasts as long as it keeps being used:
//! the bucket's `max_age` (`DA_HISTORY_TTL`) counts from a session's last write, and a
//! session keeps its last `DA_HISTORY_MAX` messages (the oldest are dropped), so neither
//! the bucket nor a model's prompt grows without bound.

use std::time::Duration;

use async_nats::jetstream;
use platform::kv::{JsonBucket, StateError};
use shared::{ActionError, TenantId};

pub use execution_contract::session::{Message, Role, Session, check_session_id};

/// The bucket's name.
pub const BUCKET: &str = "sessions";

/// The key of a session: the tenant first, like every key of the service.
pub fn key(tenant: &TenantId, session_id: &str) -> String {
    format!("{tenant}.{session_id}")
}

/// The `sessions` bucket and how many messages a session keeps.
#[derive(Clone)]
pub struct SessionStore {
    bucket: JsonBucket<Session>,
    max_messages: usize,
}

impl SessionStore {
    /// Opens the bucket, creating it with `ttl` as its `max_age` and `replicas` copies if
    /// needed (an existing bucket keeps the age and replicas it was created with).
    pub async fn open(
        js: &jetstream::Context,
        ttl: Duration,
        max_messages: usize,
        replicas: usize,
    ) -> Result<Self, StateError> {
        let bucket = JsonBucket::open(
            js,
            BUCKET,
            "Conversation histories of the execution service, by <tenant>.<session_id>",
            ttl,
            replicas,
        )
        .await?;
        Ok(Self {
            bucket,
            max_messages,
        })
    }

    /// The tenant's session `session_id`; empty if nothing was said in it (or it expired).
    pub async fn load(&self, tenant: &TenantId, session_id: &str) -> Result<Session, ActionError> {
        check_session_id(session_id)?;
        Ok(match self.bucket.get(&key(tenant, session_id)).await? {
            Some((session, _)) => session,
            None => Session::empty(session_id),
        })
    }

    /// Forgets the tenant's session `session_id`; whether there was one.
    pub async fn delete(&self, tenant: &TenantId, session_id: &str) -> Result<bool, ActionError> {
        check_session_id(session_id)?;
        Ok(self.bucket.remove(&key(tenant, session_id)).await?)
    }

    /// Appends `messages` to the session as the turn of `agent_id`, with compare-and-set so
    /// concurrent runs in one session never lose each other's turns. Returns the session.
    pub async fn append(
        &self,
        tenant: &TenantId,
        session_id: &str,
        agent_id: &str,
        messages: Vec<Message>,
    ) -> Result<Session, ActionError> {
        check_session_id(session_id)?;
        let key = key(tenant, session_id);
        loop {
            if self.bucket.get(&key).await?.is_none() {
                let mut session = Session::empty(session_id);
                session.agent_id = agent_id.to_owned();
                session.push(messages.iter().cloned(), self.max_messages);
                if self.bucket.create(&key, &session).await? {
                    return Ok(session);
                }
                // Another run created it first: append to theirs.
                continue;
            }
            let updated = self
                .bucket
                .update(&key, |session| {
                    session.agent_id = agent_id.to_owned();
                    session.push(messages.iter().cloned(), self.max_messages);
                })
                .await;
            match updated {
                Ok(session) => return Ok(session),
                // Expired between the read and the update: start it again.
                Err(StateError::Missing { .. }) => continue,
                Err(err) => return Err(err.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;

    fn said(n: usize) -> Message {
        Message::user(format!("m{n}"), OffsetDateTime::UNIX_EPOCH)
    }

    #[test]
    fn history_keeps_the_newest_messages() {
        let mut session = Session::empty("s1");
        session.push((0..3).map(said), 4);
        assert_eq!(session.messages.len(), 3);
        session.push((3..6).map(said), 4);
        let kept: Vec<&str> = session
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .collect();
        assert_eq!(kept, ["m2", "m3", "m4", "m5"]);
        session.push([said(6)], 0);
        assert!(session.messages.is_empty());
    }

    #[test]
    fn messages_have_the_wire_shape() {
        let message = Message::user("hi", OffsetDateTime::UNIX_EPOCH);
        assert_eq!(
            serde_json::to_value(&message).expect("json"),
            serde_json::json!({"role": "user", "content": "hi", "at": "1970-01-01T00:00:00Z"})
        );
        assert!(check_session_id("s-1_A").is_ok());
        assert!(check_session_id("s.1").is_err());
        assert!(check_session_id("").is_err());
    }

    #[tokio::test]
    async fn concurrent_turns_are_all_kept_up_to_the_cap() {
        let server = testkit::TestServer::start().await;
        let js = jetstream::new(server.client().await);
        let store = SessionStore::open(&js, Duration::from_secs(60), 8, 1)
            .await
            .expect("bucket");
        let acme = TenantId::new("acme").expect("tenant");
        let appends = (0..6).map(|n| {
            let store = store.clone();
            let acme = acme.clone();
            tokio::spawn(async move { store.append(&acme, "s1", "a", vec![said(n)]).await })
        });
        for append in appends {
            append.await.expect("task").expect("append");
        }
        let session = store.load(&acme, "s1").await.expect("load");
        assert_eq!(
            (session.messages.len(), session.agent_id.as_str()),
            (6, "a")
        );
        let session = store
            .append(&acme, "s1", "b", (6..10).map(said).collect())
            .await
            .expect("append");
        assert_eq!(session.messages.len(), 8);
        assert_eq!(session.messages[7].content, "m9");
        assert_eq!(store.load(&acme, "s1").await.expect("load"), session);
        // Another tenant's session of the same id is empty.
        let globex = TenantId::new("globex").expect("tenant");
        assert_eq!(
            store.load(&globex, "s1").await.expect("load"),
            Session::empty("s1")
        );
    }
}
