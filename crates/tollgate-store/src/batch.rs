//! Group commit for SQLite's hot writes (logins, refresh-token rotations).
//!
//! SQLite commits one writer at a time, and a commit costs far more than the
//! statement in it. Under load, requests that write at the same moment are
//! queued here and run by one task in a single transaction on the writer
//! connection, each statement in arrival order, so compare-and-set semantics
//! are unchanged (a second rotation of the same token in a batch sees the
//! first and matches no row). Each caller gets its own statement's row count.
//! If a batch fails as a whole, its statements are retried one by one, so one
//! bad statement fails only its own request. PostgreSQL runs writers in
//! parallel and does not use this.

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};
use tollgate_core::StoreError;
use tollgate_core::model::RefreshFamily;

/// Most statements committed together.
const MAX_BATCH: usize = 256;

/// A write the batcher runs.
#[derive(Debug)]
pub(crate) enum Op {
    /// [`crate::statements::insert_family`].
    InsertFamily(RefreshFamily),
    /// [`crate::statements::rotate_family`].
    Rotate {
        presented: String,
        next: RefreshFamily,
        now: i64,
    },
}

impl Op {
    fn query(&self) -> crate::statements::AnyQuery<'static> {
        match self {
            Op::InsertFamily(f) => crate::statements::insert_family(f),
            Op::Rotate {
                presented,
                next,
                now,
            } => crate::statements::rotate_family(presented, next, *now),
        }
    }
}

type Reply = oneshot::Sender<Result<u64, StoreError>>;

/// The handle: send an op, get its row count once its batch committed.
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    tx: mpsc::Sender<(Op, Reply)>,
}

impl Batcher {
    /// Starts the batching task over `writer` (a one-connection pool).
    pub(crate) fn spawn(writer: AnyPool) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(worker(writer, rx));
        Self { tx }
    }

    /// Runs `op` in the next batch; returns the rows it touched.
    pub(crate) async fn run(&self, op: Op) -> Result<u64, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((op, reply))
            .await
            .map_err(|_| StoreError::Backend("the write batcher has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("the write batcher dropped a write".into()))?
    }
}

async fn worker(writer: AnyPool, mut rx: mpsc::Receiver<(Op, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        match run_batch(&writer, &batch).await {
            Ok(counts) => {
                for ((_, reply), n) in batch.into_iter().zip(counts) {
                    let _ = reply.send(Ok(n));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, size = batch.len(), "batched write failed; retrying one by one");
                for (op, reply) in batch {
                    let r = op
                        .query()
                        .execute(&writer)
                        .await
                        .map(|r| r.rows_affected())
                        .map_err(crate::statements::backend);
                    let _ = reply.send(r);
                }
            }
        }
    }
}

async fn run_batch(writer: &AnyPool, batch: &[(Op, Reply)]) -> Result<Vec<u64>, sqlx::Error> {
    if let [(op, _)] = batch {
        // Alone: its own implicit transaction, no BEGIN/COMMIT round trips.
        return Ok(vec![op.query().execute(writer).await?.rows_affected()]);
    }
    let mut tx = writer.begin().await?;
    let mut counts = Vec::with_capacity(batch.len());
    for (op, _) in batch {
        counts.push(op.query().execute(&mut *tx).await?.rows_affected());
    }
    tx.commit().await?;
    Ok(counts)
}
