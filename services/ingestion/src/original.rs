//! [`OriginalWriter`]: an original written to the `documents` object store chunk by chunk
//! as it arrives, so an upload is never held whole in memory, and either stored complete or
//! not at all.
//!
//! The object store's `put` reads from a channel in a task of its own: the HTTP handler
//! feeds it and may be cancelled (the client went away) without cutting a `put` in the
//! middle. A writer that is dropped or [aborted](OriginalWriter::abort) before
//! [`finish`](OriginalWriter::finish) makes that read fail, and the failed `put` purges the
//! chunks it had published (our async-nats patch), so a refused upload (too large, not a
//! document, a full store, a client gone) leaves nothing behind.

use async_nats::jetstream::object_store::ObjectStore;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::io::StreamReader;

use crate::documents::hex;

/// The size of the pieces sent to the store (the object store's default chunk size).
const CHUNK: usize = 128 * 1024;

/// Why an original could not be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The store is at its `max_bytes`: nothing is evicted to make room, so the upload is
    /// refused (HTTP 507) until documents are deleted or the bound raised.
    #[error("the documents store is full ({0})")]
    Full(String),
    /// NATS failed otherwise.
    #[error("documents object store: {0}")]
    Store(String),
}

impl WriteError {
    /// Classifies a failed `put`: the server refuses a chunk past the stream's `max_bytes`
    /// with "maximum bytes exceeded", and past its own storage with "insufficient
    /// resources"; both mean full, anything else is a NATS failure.
    fn of_put(message: String) -> Self {
        if message.contains("maximum bytes exceeded") || message.contains("insufficient resources")
        {
            Self::Full(message)
        } else {
            Self::Store(message)
        }
    }
}

/// What the channel carries to the `put`.
enum Piece {
    /// The next bytes.
    Data(Bytes),
    /// The original is complete: end the object.
    End,
}

/// A stored original's size and SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Bytes stored.
    pub size: u64,
    /// SHA-256 of them, hex (the content index key).
    pub content_hash: String,
}

/// An original being written; see the module.
pub struct OriginalWriter {
    sender: mpsc::Sender<Piece>,
    pending: BytesMut,
    size: u64,
    hash: Sha256,
    put: JoinHandle<Result<(), WriteError>>,
}

impl OriginalWriter {
    /// Starts writing object `name` in `store`.
    pub(crate) fn start(store: ObjectStore, name: String) -> Self {
        let (sender, receiver) = mpsc::channel::<Piece>(2);
        let pieces = futures::stream::unfold(receiver, |mut receiver| async move {
            match receiver.recv().await {
                Some(Piece::Data(bytes)) => Some((Ok(bytes), receiver)),
                Some(Piece::End) => None,
                // The writer went away without finishing: fail the put, which purges.
                None => Some((Err(std::io::Error::other("upload abandoned")), receiver)),
            }
        });
        let put = tokio::spawn(async move {
            let mut reader = StreamReader::new(pieces.boxed());
            store
                .put(name.as_str(), &mut reader)
                .await
                .map(|_| ())
                .map_err(|err| WriteError::of_put(err.to_string()))
        });
        Self {
            sender,
            pending: BytesMut::new(),
            size: 0,
            hash: Sha256::new(),
            put,
        }
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The SHA-256 (hex) of what was written so far: the content index key, known before
    /// the object is ended, so a duplicate can be dropped without ever being stored.
    pub fn content_hash(&self) -> String {
        hex(&self.hash.clone().finalize())
    }

    /// Adds `bytes`; sent to the store in [`CHUNK`]s. Fails once the store refused a chunk.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        self.size += bytes.len() as u64;
        self.hash.update(bytes);
        self.pending.extend_from_slice(bytes);
        while self.pending.len() >= CHUNK {
            let piece = self.pending.split_to(CHUNK).freeze();
            if self.sender.send(Piece::Data(piece)).await.is_err() {
                // The put ended early: it failed, and says why.
                return Err(self.failure().await);
            }
        }
        Ok(())
    }

    /// Ends the object: stored complete once this returns `Ok`.
    pub async fn finish(mut self) -> Result<Written, WriteError> {
        let rest = self.pending.split().freeze();
        let sent = (rest.is_empty() || self.sender.send(Piece::Data(rest)).await.is_ok())
            && self.sender.send(Piece::End).await.is_ok();
        let size = self.size;
        let Self {
            sender, hash, put, ..
        } = self;
        drop(sender);
        let outcome = joined(put).await;
        match (sent, outcome) {
            (true, Ok(())) => Ok(Written {
                size,
                content_hash: hex(&hash.finalize()),
            }),
            (_, Err(err)) => Err(err),
            (false, Ok(())) => Err(WriteError::Store("the upload was cut short".to_owned())),
        }
    }

    /// Gives up: once this returns, nothing of the object is in the store.
    pub async fn abort(self) {
        let Self { sender, put, .. } = self;
        drop(sender);
        let _ = joined(put).await;
    }

    /// Why the put ended before the end of the object.
    async fn failure(&mut self) -> WriteError {
        match (&mut self.put).await {
            Ok(Err(err)) => err,
            Ok(Ok(())) => WriteError::Store("the store ended the object early".to_owned()),
            Err(err) => WriteError::Store(format!("the store's writer failed: {err}")),
        }
    }
}

/// The put's outcome, a panic in it included.
async fn joined(put: JoinHandle<Result<(), WriteError>>) -> Result<(), WriteError> {
    put.await
        .map_err(|err| WriteError::Store(format!("the store's writer failed: {err}")))?
}
