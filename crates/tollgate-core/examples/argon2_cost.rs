//! Measures what one argon2id verification costs with tollgate's parameters
//! (the price of an imported secret's first or failed check). Run with
//! `cargo run --release -p tollgate-core --example argon2_cost`.

use std::time::Instant;

use secrecy::SecretString;
use tollgate_core::crypto::master::MasterKey;
use tollgate_core::crypto::secret::{Check, argon2_records, check_argon2, hash_for_storage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keys = MasterKey::generate()?.derive()?;
    let secret = SecretString::from("imported-partner-secret");
    let rec = hash_for_storage(&keys, "default", "c", &secret, 0)?;
    let phcs = argon2_records(std::slice::from_ref(&rec), 1);
    let n = 20;
    let start = Instant::now();
    for _ in 0..n {
        if check_argon2(&secret, &phcs) == Check::NoMatch {
            return Err("argon2 verification failed".into());
        }
    }
    let ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(n);
    println!("argon2id (m=19 MiB, t=2, p=1): {ms:.1} ms per verification ({n} runs, one core)");
    Ok(())
}
