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
//!
//! Each call into SQLite crosses to the connection's own thread and back, and
//! those hops, not the statements, were most of a batch's cost (a context
//! switch or two each). So a batch's statements go over in chunks: one call
//! carries up to [`CHUNKS`]`[0]` statements of one kind, their parameters
//! renumbered, and comes back with each statement's row count.

use std::sync::OnceLock;

use futures_util::TryStreamExt;
use sqlx::{AnyPool, Either};
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

/// Chunk sizes, largest first: a run of `n` statements of one kind goes
/// over as `n` written in these sizes, so at most `CHUNKS.len()` texts per
/// kind are ever prepared (sqlx caches each on the connection).
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// The two kinds of statement, as an index into the chunk texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    InsertFamily = 0,
    Rotate = 1,
}

impl Kind {
    fn sql(self) -> &'static str {
        match self {
            Kind::InsertFamily => crate::statements::INSERT_FAMILY_SQL,
            Kind::Rotate => crate::statements::ROTATE_FAMILY_SQL,
        }
    }

    /// The statement repeated `CHUNKS[size]` times, each copy's `$n`
    /// shifted past the parameters of the copies before it.
    fn chunk_sql(self, size: usize) -> &'static str {
        static TEXTS: OnceLock<[[String; CHUNKS.len()]; 2]> = OnceLock::new();
        let texts = TEXTS.get_or_init(|| {
            [Kind::InsertFamily, Kind::Rotate].map(|k| CHUNKS.map(|n| repeat_numbered(k.sql(), n)))
        });
        texts[self as usize][size].as_str()
    }
}

/// `sql` written `n` times, separated by `;`, the `$k` parameters of copy
/// `i` renumbered to `$k + i * p` where `p` is the statement's highest `$k`.
fn repeat_numbered(sql: &str, n: usize) -> String {
    let params = parameters(sql).max().unwrap_or(0);
    let mut out = String::with_capacity((sql.len() + 32) * n);
    for i in 0..n {
        if i > 0 {
            out.push_str(";\n");
        }
        let mut pieces = sql.split('$');
        out.push_str(pieces.next().unwrap_or_default());
        for piece in pieces {
            out.push('$');
            // A `$` not followed by a number is not a parameter: kept as is.
            match leading_number(piece) {
                Some((k, len)) => {
                    out.push_str(&(k + i * params).to_string());
                    out.push_str(&piece[len..]);
                }
                None => out.push_str(piece),
            }
        }
    }
    out
}

/// The numbers of a statement's `$k` parameters.
fn parameters(sql: &str) -> impl Iterator<Item = usize> + '_ {
    sql.split('$')
        .skip(1)
        .filter_map(|s| leading_number(s).map(|(k, _)| k))
}

/// The number `s` starts with, and how many bytes it takes.
fn leading_number(s: &str) -> Option<(usize, usize)> {
    let len = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    Some((s[..len].parse().ok()?, len))
}

impl Op {
    fn kind(&self) -> Kind {
        match self {
            Op::InsertFamily(_) => Kind::InsertFamily,
            Op::Rotate { .. } => Kind::Rotate,
        }
    }

    /// Adds this op's parameters to `q` (whose text has its statement next).
    fn bind<'q>(&self, q: crate::statements::AnyQuery<'q>) -> crate::statements::AnyQuery<'q> {
        match self {
            Op::InsertFamily(f) => crate::statements::bind_family(q, f),
            Op::Rotate {
                presented,
                next,
                now,
            } => crate::statements::bind_rotate(q, presented, next, *now),
        }
    }

    /// This op alone, as one statement.
    fn query(&self) -> crate::statements::AnyQuery<'static> {
        self.bind(sqlx::query(self.kind().sql()))
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
    let mut rest = batch;
    while let Some((first, _)) = rest.first() {
        // The longest run of one kind, then the largest chunk that fits it:
        // arrival order is kept, chunk after chunk.
        let kind = first.kind();
        let run = rest.iter().take_while(|(op, _)| op.kind() == kind).count();
        let size = CHUNKS
            .iter()
            .position(|&c| c <= run)
            .unwrap_or(CHUNKS.len() - 1);
        let (chunk, after) = rest.split_at(CHUNKS[size].min(run));
        let q = chunk
            .iter()
            .fold(sqlx::query(kind.chunk_sql(size)), |q, (op, _)| op.bind(q));
        // One result per statement, in order (neither kind returns rows).
        // `fetch_many` is the one sqlx call that reports each statement of a
        // multi-statement text; sqlx 0.8 deprecates that for a later
        // version, and SQLite is the driver that has it: revisit on upgrade.
        #[allow(deprecated)]
        let results: Vec<u64> = q
            .fetch_many(&mut *tx)
            .try_filter_map(|step| async move {
                Ok(match step {
                    Either::Left(done) => Some(done.rows_affected()),
                    Either::Right(_) => None,
                })
            })
            .try_collect()
            .await?;
        if results.len() != chunk.len() {
            return Err(sqlx::Error::Protocol(format!(
                "a chunk of {} statements reported {} results",
                chunk.len(),
                results.len()
            )));
        }
        counts.extend(results);
        rest = after;
    }
    tx.commit().await?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_renumbered_past_each_other() {
        let sql = "UPDATE t SET a = $1, b = $2 WHERE c = $3 AND d = $1";
        assert_eq!(
            repeat_numbered(sql, 2),
            "UPDATE t SET a = $1, b = $2 WHERE c = $3 AND d = $1;\n\
             UPDATE t SET a = $4, b = $5 WHERE c = $6 AND d = $4"
        );
    }

    #[test]
    fn a_dollar_without_a_number_is_copied_as_it_is() {
        assert_eq!(
            repeat_numbered("SELECT '$' || $1 || '$x'", 2),
            "SELECT '$' || $1 || '$x';
SELECT '$' || $2 || '$x'"
        );
    }

    #[test]
    fn chunk_texts_hold_as_many_parameters_as_their_copies_bind() {
        for (kind, per) in [(Kind::InsertFamily, 17), (Kind::Rotate, 10)] {
            for (i, &n) in CHUNKS.iter().enumerate() {
                let text = kind.chunk_sql(i);
                assert_eq!(text.matches(';').count(), n - 1);
                assert_eq!(parameters(text).max(), Some(n * per));
            }
        }
    }
}
