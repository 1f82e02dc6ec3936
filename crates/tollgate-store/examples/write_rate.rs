//! Measures the store's rates on SQLite: reads, refresh-family inserts
//! (logins and rotations, sequential and 64-way).
//! `cargo run --release -p tollgate-store --example write_rate`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use tollgate_core::model::{GrantType, RefreshFamily};
use tollgate_core::store::Store;
use tollgate_store::SqlStore;

fn family(id: String) -> RefreshFamily {
    RefreshFamily {
        env: "default".into(),
        family: id.clone(),
        contract: "bench".into(),
        client_id: "c".into(),
        username: "u".into(),
        grant: GrantType::Password,
        audience: "a".into(),
        scope: "s".into(),
        current: id,
        previous: None,
        access_jti: "j".into(),
        access_exp: 2_000_000_000,
        issued_at: 1,
        expires_at: 2_000_000_000,
        rotated_at: None,
        revoked_at: None,
        created_at: 1,
    }
}

/// Family `i`'s id: scattered like the random ids of real families, so
/// that writes land on pages all over the table as they do in production.
fn id(i: u32) -> String {
    format!(
        "{:016x}-{i}",
        u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    )
}

fn rate(what: &str, n: u32, started: Instant) {
    println!(
        "{what}: {:.0}/s",
        f64::from(n) / started.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
    let s = Arc::new(SqlStore::open(&url).await.unwrap());
    // N families (default 5,000); the rotations touch each once, so a large
    // N shows what random updates over a big table cost.
    let n: u32 = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let t = Instant::now();
    for _ in 0..n {
        s.revision().await.unwrap();
    }
    rate("sequential reads", n, t);
    let t = Instant::now();
    for i in 0..n {
        s.insert_refresh_family(&family(id(i))).await.unwrap();
    }
    rate("sequential inserts", n, t);
    let t = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..(n / 64) {
                    s.insert_refresh_family(&family(format!("par-{w}-{i}")))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    rate("64-way inserts", n / 64 * 64, t);
    let t = Instant::now();
    for i in 0..n {
        let mut next = family(id(i));
        next.current = format!("rot-{i}");
        let r = s.rotate_refresh_family(&id(i), &next, 5).await.unwrap();
        assert!(r, "rotated");
    }
    rate("sequential rotations", n, t);
    // Every family rotated again, 64 at a time (what group commit is for).
    let t = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in (w..n).step_by(64) {
                    let mut next = family(id(i));
                    next.current = format!("again-{i}");
                    let r = s
                        .rotate_refresh_family(&format!("rot-{i}"), &next, 5)
                        .await
                        .unwrap();
                    assert!(r, "rotated");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    rate("64-way rotations", n, t);
}
