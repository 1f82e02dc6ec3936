//! What every command needs before it does anything: the store, the master
//! key and the public URL. A leaf of the binary: `commands`, `serve` and
//! `doctor` all use it, and it uses none of them (only `config` and
//! `master`), so they do not import one another.

use std::sync::Arc;

use anyhow::Result;
use tollgate_store::SqlStore;

use crate::config::Config;

/// Opens the store for `config`: the SQLite database in the data directory
/// (created, with the directory, on first use) or `database_url`.
pub async fn open_store(config: &Config) -> Result<Arc<SqlStore>> {
    let store = match &config.database_url {
        Some(url) => SqlStore::open(url).await?,
        None => {
            crate::master::create_data_dir(&config.data_dir)?;
            SqlStore::open_data_dir(&config.data_dir).await?
        }
    };
    Ok(Arc::new(store))
}

/// Loads the master key for `store`.
pub async fn load_master(
    config: &Config,
    store: &SqlStore,
) -> Result<tollgate_core::crypto::master::MasterKey> {
    use tollgate_core::store::Store as _;
    let has_keys = !store.list_signing_keys().await?.is_empty();
    crate::master::load(&config.data_dir, has_keys)
}

/// The public URL: configured, or derived from the listen address.
pub fn public_url(config: &Config, bound: std::net::SocketAddr) -> String {
    config.public_url.clone().unwrap_or_else(|| {
        let scheme = if config.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{bound}")
    })
}
