//! Task state: where each ingestion is, in the KV bucket `tasks` (`<tenant>.<task_id>`), so
//! any instance can report it, a browser can watch it live, and a restarted worker resumes.

use std::time::Duration;

use async_nats::jetstream;
use futures::Stream;
use serde::{Deserialize, Serialize};
use shared::{ActionError, TenantId};

use crate::bucket::{JsonBucket, StateError};

/// The stages of a task, in order (the statuses of the Python system this replaces).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Accepted, not started.
    Pending,
    /// Reading the original and extracting its text.
    Processing,
    /// Cutting the text into chunks.
    Chunking,
    /// Chunks are being embedded and indexed, batch by batch.
    Embedding,
    /// The last batches are being indexed.
    Storing,
    /// Every chunk is searchable.
    Completed,
    /// Stopped; `error` says why.
    Failed,
}

impl TaskStatus {
    /// Whether nothing more will happen to the task.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

/// Time spent in each stage, for the benchmark's breakdown.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
pub struct StageTimings {
    /// Reading and extracting text.
    pub extract_ms: u64,
    /// Chunking.
    pub chunk_ms: u64,
    /// Embedding (the embedding service's own handler time, all batches).
    pub embed_ms: u64,
    /// Indexing (query.index round trips, all batches).
    pub index_ms: u64,
}

/// One ingestion task.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema,
)]
pub struct TaskState {
    /// Its id.
    pub task_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// The document it ingests.
    pub document_id: String,
    /// The collection it indexes into.
    pub collection: String,
    /// Where it is.
    pub status: TaskStatus,
    /// 0 to 100.
    pub percentage: u8,
    /// Chunks the document was cut into.
    #[serde(default)]
    pub chunks_total: usize,
    /// Chunks embedded and indexed so far.
    #[serde(default)]
    pub chunks_done: usize,
    /// Embedding batches in all.
    #[serde(default)]
    pub batches_total: usize,
    /// Which batches are done (a set: a batch redelivered after a crash counts once).
    #[serde(default)]
    pub batches_done: Vec<u32>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Set when the content was already in the collection: that document's id. The task
    /// completes without indexing anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
    /// Time per stage.
    #[serde(default)]
    pub timings: StageTimings,
}

impl TaskState {
    /// A new pending task.
    pub fn pending(tenant: &TenantId, task_id: &str, document_id: &str, collection: &str) -> Self {
        let now = now();
        Self {
            task_id: task_id.to_owned(),
            tenant_id: tenant.as_str().to_owned(),
            document_id: document_id.to_owned(),
            collection: collection.to_owned(),
            status: TaskStatus::Pending,
            percentage: 0,
            chunks_total: 0,
            chunks_done: 0,
            batches_total: 0,
            batches_done: Vec::new(),
            error: None,
            duplicate_of: None,
            created_at: now.clone(),
            updated_at: now,
            timings: StageTimings::default(),
        }
    }

    /// Moves to `status` (never out of a final one) with its usual percentage.
    pub fn advance(&mut self, status: TaskStatus) {
        if self.status.is_final() {
            return;
        }
        self.status = status;
        self.percentage = match status {
            TaskStatus::Pending => 0,
            TaskStatus::Processing => 5,
            TaskStatus::Chunking => 10,
            TaskStatus::Embedding => self.batch_percentage(),
            TaskStatus::Storing => 95,
            TaskStatus::Completed => 100,
            TaskStatus::Failed => self.percentage,
        };
        self.updated_at = now();
    }

    /// Marks the task failed with `reason`.
    pub fn fail(&mut self, reason: impl Into<String>) {
        if self.status.is_final() {
            return;
        }
        self.error = Some(reason.into());
        self.advance(TaskStatus::Failed);
    }

    /// Records batch `batch` (of `chunks` chunks) as done; `false` if it already was.
    pub fn finish_batch(&mut self, batch: u32, chunks: usize) -> bool {
        if self.batches_done.contains(&batch) {
            return false;
        }
        self.batches_done.push(batch);
        self.chunks_done += chunks;
        if self.batches_done.len() >= self.batches_total {
            self.advance(TaskStatus::Storing);
        } else {
            self.advance(TaskStatus::Embedding);
        }
        true
    }

    fn batch_percentage(&self) -> u8 {
        let done = self.batches_done.len() as f64 / self.batches_total.max(1) as f64;
        (10.0 + 80.0 * done).round() as u8
    }
}

/// The current time as RFC 3339.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The `tasks` bucket.
#[derive(Clone)]
pub struct Tasks(JsonBucket<TaskState>);

impl Tasks {
    /// Opens (or creates, with `replicas` copies) the bucket; tasks are kept a week.
    pub async fn open(js: &jetstream::Context, replicas: usize) -> Result<Self, StateError> {
        JsonBucket::open(
            js,
            "tasks",
            "Ingestion tasks: status and progress, per tenant",
            Duration::from_secs(7 * 24 * 3600),
            replicas,
        )
        .await
        .map(Self)
    }

    fn key(tenant: &TenantId, task_id: &str) -> String {
        format!("{tenant}.{task_id}")
    }

    /// A task of `tenant`; `None` if it does not exist (or is another tenant's).
    pub async fn get(
        &self,
        tenant: &TenantId,
        task_id: &str,
    ) -> Result<Option<TaskState>, StateError> {
        Ok(self
            .0
            .get(&Self::key(tenant, task_id))
            .await?
            .map(|(v, _)| v))
    }

    /// Creates `task` unless one with its id exists; returns the stored one either way.
    pub async fn create(&self, task: TaskState) -> Result<TaskState, StateError> {
        let tenant = TenantId::new(&task.tenant_id).map_err(|err| StateError::Corrupt {
            bucket: "tasks",
            key: task.task_id.clone(),
            reason: err.to_string(),
        })?;
        let key = Self::key(&tenant, &task.task_id);
        if self.0.create(&key, &task).await? {
            return Ok(task);
        }
        Ok(self.0.get(&key).await?.map(|(v, _)| v).unwrap_or(task))
    }

    /// Changes a task with compare-and-set.
    pub async fn update(
        &self,
        tenant: &TenantId,
        task_id: &str,
        change: impl FnMut(&mut TaskState),
    ) -> Result<TaskState, StateError> {
        self.0.update(&Self::key(tenant, task_id), change).await
    }

    /// The task now and at every change, for live progress.
    pub async fn watch(
        &self,
        tenant: &TenantId,
        task_id: &str,
    ) -> Result<impl Stream<Item = TaskState> + Send + 'static + use<>, StateError> {
        self.0.watch(&Self::key(tenant, task_id)).await
    }

    /// Forgets a task.
    pub async fn delete(&self, tenant: &TenantId, task_id: &str) -> Result<(), StateError> {
        self.0.delete(&Self::key(tenant, task_id)).await
    }
}

/// Checks an id that becomes part of a KV key or object name: one NATS token of
/// `[A-Za-z0-9_-]`, 1 to 128 long (UUIDs fit).
pub fn check_id(what: &str, id: &str) -> Result<(), ActionError> {
    let ok = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ActionError::invalid(format!(
            "{what} {id:?} must be 1 to 128 characters of A-Z, a-z, 0-9, _ and -"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_count_once_and_drive_the_percentage() {
        let tenant = TenantId::new("acme").unwrap();
        let mut task = TaskState::pending(&tenant, "t", "d", "c");
        task.batches_total = 4;
        task.advance(TaskStatus::Embedding);
        assert_eq!(task.percentage, 10);
        assert!(task.finish_batch(0, 32));
        assert!(!task.finish_batch(0, 32), "a redelivered batch counts once");
        assert_eq!((task.chunks_done, task.percentage), (32, 30));
        for batch in 1..4 {
            task.finish_batch(batch, 10);
        }
        assert_eq!(task.status, TaskStatus::Storing);
        task.fail("boom");
        task.advance(TaskStatus::Completed);
        assert_eq!(task.status, TaskStatus::Failed, "final states stay final");
    }

    #[test]
    fn ids_are_single_tokens() {
        assert!(check_id("task_id", "0192f0c4-aa_B").is_ok());
        for bad in ["", "a.b", "a*", "a b", &"x".repeat(129)] {
            assert!(check_id("task_id", bad).is_err(), "{bad:?}");
        }
    }
}
