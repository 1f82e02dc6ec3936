//! Measures the store's write rate on SQLite: refresh-token inserts and
//! rotations, sequential and 64-way concurrent.
//! `cargo run --release -p tollgate-store --example write_rate`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use tollgate_core::model::{GrantType, RefreshTokenRecord};
use tollgate_core::store::Store;
use tollgate_store::SqlStore;

fn rec(id: String) -> RefreshTokenRecord {
    RefreshTokenRecord {
        env: "default".into(),
        family: id.clone(),
        id,
        contract: "bench".into(),
        client_id: "c".into(),
        username: "u".into(),
        grant: GrantType::Password,
        audience: "a".into(),
        scope: "s".into(),
        access_jti: "j".into(),
        access_exp: 2_000_000_000,
        created_at: 1,
        expires_at: 2_000_000_000,
        rotated_at: None,
        successor: None,
        revoked_at: None,
    }
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
    let s = Arc::new(SqlStore::open(&url).await.unwrap());
    let n = 5000;
    let t = Instant::now();
    for _ in 0..n {
        s.revision().await.unwrap();
    }
    println!(
        "sequential reads: {:.0}/s",
        f64::from(n) / t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    for i in 0..n {
        s.insert_refresh_token(&rec(format!("seq-{i}")))
            .await
            .unwrap();
    }
    let e = t.elapsed();
    println!(
        "sequential inserts: {:.0}/s",
        f64::from(n) / e.as_secs_f64()
    );
    let t = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..(n / 64) {
                    s.insert_refresh_token(&rec(format!("par-{w}-{i}")))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let e = t.elapsed();
    println!(
        "64-way inserts: {:.0}/s",
        f64::from(n / 64 * 64) / e.as_secs_f64()
    );
    let t = Instant::now();
    for i in 0..n {
        let r = s
            .rotate_refresh_token(
                "default",
                &format!("seq-{i}"),
                &rec(format!("rot-{i}")),
                5,
                10,
            )
            .await
            .unwrap();
        assert_eq!(r, tollgate_core::store::Rotation::Rotated);
    }
    let e = t.elapsed();
    println!(
        "sequential rotations: {:.0}/s",
        f64::from(n) / e.as_secs_f64()
    );
}
