//! Group commit for SQLite's hot writes (logins, refresh-token rotations).
//!
//! SQLite commits one writer at a time, and a commit costs far more than the
//! statement in it. Under load, requests that write at the same moment are
//! queued here and run by one task on the writer connection: all the batch's
//! new families in one INSERT, all its rotations in one UPDATE, each
//! statement its own transaction. The two kinds may commit apart because a
//! rotation never depends on an insert of the same batch (a family's first
//! token is handed out only once its insert has committed). If a statement
//! fails as a whole, its rows are retried one by one, so one bad row fails
//! only its own request. PostgreSQL runs writers in parallel and does not
//! use this.
//!
//! One statement per kind, because each call into SQLite crosses to the
//! connection's own thread and back, and under load those crossings (a
//! thread waiting for a core, then the task waiting for a worker) were most
//! of a batch's time. The batch is padded to a power of two with rows that
//! match nothing, so that nine texts per kind, prepared once, serve every
//! size.
//!
//! Each caller still gets its own row count. An INSERT lands whole or fails;
//! an UPDATE that changed fewer rows than it carried rotations lost some
//! compare-and-sets (a token already rotated, revoked or expired, or two
//! rotations of one token, of which one wins), and one more read tells which
//! rotation's successor is the family's current token.

use std::collections::HashMap;
use std::sync::OnceLock;

use sqlx::{AnyPool, Row as _};
use tokio::sync::{mpsc, oneshot};
use tollgate_core::StoreError;
use tollgate_core::model::RefreshFamily;

use crate::statements::{AnyQuery, bind_family, bind_rotate, insert_families_sql};
use crate::statements::{FAMILY_PARAMETERS, ROTATE_PARAMETERS};
use crate::statements::{INSERT_FAMILY_SQL, ROTATE_FAMILY_SQL, rotate_families_sql};

/// Most statements committed together (a power of two: the largest text).
const MAX_BATCH: usize = 256;

/// The text sizes: 1, 2, 4, … [`MAX_BATCH`] rows.
const SIZES: usize = MAX_BATCH.trailing_zeros() as usize + 1;

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

/// The two kinds of write, as an index into the texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    InsertFamily = 0,
    Rotate = 1,
}

impl Kind {
    /// One write alone: the statement PostgreSQL runs too.
    fn sql(self) -> &'static str {
        match self {
            Kind::InsertFamily => INSERT_FAMILY_SQL,
            Kind::Rotate => ROTATE_FAMILY_SQL,
        }
    }

    /// The statement for `2^size` writes of this kind.
    fn many_sql(self, size: usize) -> &'static str {
        static TEXTS: OnceLock<[[String; SIZES]; 2]> = OnceLock::new();
        let texts = TEXTS.get_or_init(|| {
            let each = |f: fn(usize) -> String| std::array::from_fn(|k| f(1 << k));
            [each(insert_families_sql), each(rotate_families_sql)]
        });
        texts[self as usize][size].as_str()
    }

    /// A row that writes nothing: an empty env, which no environment has (an
    /// INSERT skips it, an UPDATE matches no family with it, nor any
    /// current token, which is never empty).
    fn bind_filler(self, q: AnyQuery<'_>) -> AnyQuery<'_> {
        let columns = match self {
            Kind::InsertFamily => FAMILY_PARAMETERS,
            Kind::Rotate => ROTATE_PARAMETERS,
        };
        (0..columns).fold(q, |q, _| q.bind(""))
    }
}

impl Op {
    fn kind(&self) -> Kind {
        match self {
            Op::InsertFamily(_) => Kind::InsertFamily,
            Op::Rotate { .. } => Kind::Rotate,
        }
    }

    /// Adds this op's parameters to `q`, in its statement's order.
    fn bind<'q>(&self, q: AnyQuery<'q>) -> AnyQuery<'q> {
        match self {
            Op::InsertFamily(f) => bind_family(q, f),
            Op::Rotate {
                presented,
                next,
                now,
            } => bind_rotate(q, presented, next, *now),
        }
    }

    /// This op alone, as one statement.
    fn query(&self) -> AnyQuery<'static> {
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
        let (inserts, rotations): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|(op, _)| op.kind() == Kind::InsertFamily);
        // Inserts first, though no caller can tell (see the module doc).
        for part in [inserts, rotations] {
            if !part.is_empty() {
                run_part(&writer, part).await;
            }
        }
    }
}

/// Runs `part` (ops of one kind) and answers each caller.
async fn run_part(writer: &AnyPool, part: Vec<(Op, Reply)>) {
    match run_many(writer, &part).await {
        Ok(counts) => {
            for ((_, reply), n) in part.into_iter().zip(counts) {
                let _ = reply.send(Ok(n));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, size = part.len(), "batched write failed; retrying one by one");
            for (op, reply) in part {
                let r = op
                    .query()
                    .execute(writer)
                    .await
                    .map(|r| r.rows_affected())
                    .map_err(crate::statements::backend);
                let _ = reply.send(r);
            }
        }
    }
}

/// Runs `part` (non-empty, of one kind, at most [`MAX_BATCH`] ops) as one
/// statement; each op's row count, in order.
async fn run_many(writer: &AnyPool, part: &[(Op, Reply)]) -> Result<Vec<u64>, sqlx::Error> {
    let Some((first, _)) = part.first() else {
        return Ok(Vec::new());
    };
    if part.len() == 1 {
        return Ok(vec![first.query().execute(writer).await?.rows_affected()]);
    }
    let kind = first.kind();
    let rows = part.len().next_power_of_two();
    let size = rows.trailing_zeros() as usize;
    if size >= SIZES {
        return Err(sqlx::Error::Protocol(format!(
            "a batch of {} writes (at most {MAX_BATCH})",
            part.len()
        )));
    }
    let q = part
        .iter()
        .fold(sqlx::query(kind.many_sql(size)), |q, (op, _)| op.bind(q));
    let q = (part.len()..rows).fold(q, |q, _| kind.bind_filler(q));
    let changed = q.execute(writer).await?.rows_affected();
    if usize::try_from(changed).is_ok_and(|c| c == part.len()) {
        return Ok(vec![1; part.len()]);
    }
    match kind {
        // An INSERT lands whole or fails.
        Kind::InsertFamily => Err(sqlx::Error::Protocol(format!(
            "{changed} of {} families inserted",
            part.len()
        ))),
        Kind::Rotate => winners(writer, part).await,
    }
}

/// After an UPDATE that lost some compare-and-sets: 1 for each rotation
/// whose successor is its family's current token, 0 for the others. Nothing
/// else moves a family's current token to a successor nobody else has seen.
async fn winners(writer: &AnyPool, part: &[(Op, Reply)]) -> Result<Vec<u64>, sqlx::Error> {
    let wanted: Vec<&RefreshFamily> = part
        .iter()
        .filter_map(|(op, _)| match op {
            Op::Rotate { next, .. } => Some(next),
            Op::InsertFamily(_) => None,
        })
        .collect();
    let text = format!(
        "SELECT env, family, current_id FROM tg_refresh_families WHERE (env, family) IN (VALUES {})",
        vec!["(?, ?)"; wanted.len()].join(", ")
    );
    // Rare, and of any size: not kept prepared.
    let q = wanted.iter().fold(sqlx::query(&text), |q, f| {
        q.bind(f.env.as_str()).bind(f.family.as_str())
    });
    let mut current = HashMap::new();
    for row in q.persistent(false).fetch_all(writer).await? {
        let key: (String, String) = (row.try_get(0)?, row.try_get(1)?);
        current.insert(key, row.try_get::<String, _>(2)?);
    }
    Ok(wanted
        .iter()
        .map(|f| {
            let now = current.get(&(f.env.clone(), f.family.clone()));
            u64::from(now.is_some_and(|c| *c == f.current))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_carry_as_many_rows_as_their_size_says() {
        for (kind, columns) in [(Kind::InsertFamily, 17), (Kind::Rotate, 10)] {
            for size in 0..SIZES {
                let text = kind.many_sql(size);
                assert_eq!(text.matches('?').count(), (1 << size) * columns);
                assert!(!text.contains('$'), "{text}");
            }
        }
    }
}
