//! `tollgate migrate-store --from DATA_DIR --to URL`: copies the SQLite
//! store of a data directory into another database (PostgreSQL), with a
//! progress bar on stderr, and makes sure the copy is usable.
//!
//! The signing keys travel sealed under the master key, which is not in the
//! database. So the command refuses a source whose keys do not open under
//! the master key it finds (`TOLLGATE_MASTER_KEY`, else `master.key` in
//! `--from`), checks after the copy that every key of the target opens
//! under it, and either writes the key into `--to-data-dir` (0600, never
//! over another key) or says exactly what to copy where.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::json;
use tollgate_core::crypto::keys::SigningKey;
use tollgate_core::crypto::master::{MASTER_KEY_ENV, MasterKey};
use tollgate_core::store::Store as _;
use tollgate_core::time::{now, rfc3339};
use tollgate_store::{MigrationReport, Progress, SqlStore};

use crate::cli::MigrateArgs;
use crate::config::{Config, redact_url};

/// Runs the command.
pub async fn run(config: &Config, args: MigrateArgs, json_out: bool) -> Result<()> {
    if config.database_url.is_some() {
        bail!(
            "migrate-store reads the SQLite store of --from and writes --to; \
             --database-url (or TOLLGATE_DATABASE_URL) is not used here: unset it"
        );
    }
    let db = tollgate_store::database_path(&args.from);
    if !db.exists() {
        bail!(
            "there is no database at {}: nothing to migrate (wrong --from?)",
            db.display()
        );
    }
    if same_file(&db, &args.to) {
        bail!("--to names the source database itself");
    }
    let source = SqlStore::open_data_dir(&args.from)
        .await
        .with_context(|| format!("cannot open the source {}", db.display()))?;
    let result = with_source(&source, &db, &args, json_out).await;
    source.close().await;
    result
}

async fn with_source(
    source: &SqlStore,
    db: &Path,
    args: &MigrateArgs,
    json_out: bool,
) -> Result<()> {
    // Never creates a key: a store with sealed keys needs the one it has.
    let master = crate::master::load(&args.from, true)?;
    let key_source = crate::master::source(&args.from);
    let keys = source.list_signing_keys().await?;
    unseal_all(&master, &keys).with_context(|| {
        format!(
            "the source's signing keys do not open under the master key from {key_source}; \
             nothing was copied (no instance could use the copy)"
        )
    })?;
    if let Some(dir) = &args.to_data_dir {
        crate::master::check_install(dir, &master)?;
    }
    let target = SqlStore::open(&args.to)
        .await
        .with_context(|| format!("cannot open the target {}", redact_url(&args.to)))?;
    let at = now();
    let started = std::time::Instant::now();
    let mut bar = Bar::new(std::io::stderr().is_terminal());
    let copied = source.migrate_into(&target, at, &mut |p| bar.show(p)).await;
    let report = match copied {
        Ok(r) => r,
        Err(e) => {
            target.close().await;
            return Err(e.into());
        }
    };
    let elapsed = started.elapsed();
    // The copy is only as good as its keys: open every one of them, as each
    // instance on the target will.
    let target_keys = target.list_signing_keys().await;
    target.close().await;
    unseal_all(&master, &target_keys?).with_context(|| {
        format!("the target's signing keys do not open under the master key from {key_source}")
    })?;
    let written = match &args.to_data_dir {
        Some(dir) => Some((
            dir.join(crate::master::KEY_FILE),
            crate::master::install(dir, &master)?,
        )),
        None => None,
    };
    let to = redact_url(&args.to);
    let key_file = args.from.join(crate::master::KEY_FILE);
    let from_env = key_source == MASTER_KEY_ENV;
    let instruction = match (&written, from_env) {
        (Some((path, true)), _) => format!("written to {} (mode 600)", path.display()),
        (Some((path, false)), _) => format!("already in {}", path.display()),
        (None, true) => format!(
            "it came from {MASTER_KEY_ENV}: give every instance on the target the same {MASTER_KEY_ENV}"
        ),
        (None, false) => format!(
            "copy {} to the data directory of every instance on the target, as master.key, \
             mode 600 (or give them {MASTER_KEY_ENV} with its content)",
            key_file.display()
        ),
    };
    let tables: serde_json::Map<String, serde_json::Value> = report
        .tables
        .iter()
        .map(|t| {
            (
                t.table.to_string(),
                json!({"source": t.source_rows, "copied": t.copied, "present": t.present, "target": t.target_rows}),
            )
        })
        .collect();
    let not_copied: serde_json::Map<String, serde_json::Value> = tollgate_store::NOT_COPIED
        .iter()
        .map(|(t, why)| (t.to_string(), json!(why)))
        .collect();
    if json_out {
        println!(
            "{}",
            json!({
                "from": db.display().to_string(),
                "to": to,
                "as_of": rfc3339(at),
                "schema_version": report.schema_version,
                "tables": tables,
                "not_copied": not_copied,
                "revision_bumped": report.revision_bumped,
                "seconds": elapsed.as_secs_f64(),
                "master_key": {
                    "source": key_source,
                    "written_to": written.as_ref().filter(|(_, w)| *w).map(|(p, _)| p.display().to_string()),
                    "instruction": instruction,
                },
            })
        );
    } else {
        print!(
            "{}",
            summary(db, &to, at, &report, elapsed, &key_source, &instruction)
        );
    }
    Ok(())
}

/// Opens every sealed key under `master`; the first that does not open is
/// the error.
fn unseal_all(master: &MasterKey, keys: &[tollgate_core::model::SigningKeyRecord]) -> Result<()> {
    let derived = master.derive()?;
    for k in keys {
        SigningKey::load(&derived, k).with_context(|| format!("key {}/{}", k.env, k.kid))?;
    }
    Ok(())
}

/// Whether `to` is a SQLite URL naming the file `db`.
fn same_file(db: &Path, to: &str) -> bool {
    let Some(rest) = to
        .strip_prefix("sqlite://")
        .or_else(|| to.strip_prefix("sqlite:"))
    else {
        return false;
    };
    let path = PathBuf::from(rest.split('?').next().unwrap_or(rest));
    matches!((db.canonicalize(), path.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

fn summary(
    db: &Path,
    to: &str,
    at: i64,
    report: &MigrationReport,
    elapsed: std::time::Duration,
    key_source: &str,
    instruction: &str,
) -> String {
    let mut text = format!(
        "copied {} into {to} as of {} (schema version {}) in {:.1} s\n",
        db.display(),
        rfc3339(at),
        report.schema_version,
        elapsed.as_secs_f64()
    );
    for t in &report.tables {
        text.push_str(&format!(
            "  {:<22}{:>9} rows ({} copied, {} already there)\n",
            t.table, t.target_rows, t.copied, t.present
        ));
    }
    text.push_str("not copied:\n");
    for (t, why) in tollgate_store::NOT_COPIED {
        text.push_str(&format!("  {t:<22}{why}\n"));
    }
    text.push_str(&format!(
        "verified: every table's live rows match the source's, and every signing key opens \
         under the master key from {key_source}.\n\
         The target's keys are sealed under that master key: {instruction}.\n\
         Then check each instance with: tollgate --data-dir DIR --database-url URL doctor\n"
    ));
    text
}

/// The progress display: on a terminal one line per table, redrawn in
/// place; otherwise one plain line per finished table (a log file gets no
/// carriage returns).
struct Bar {
    terminal: bool,
}

impl Bar {
    fn new(terminal: bool) -> Self {
        Self { terminal }
    }

    fn show(&mut self, p: Progress) {
        let line = match (self.terminal, p.finished) {
            (true, false) => format!("\r{}", bar_line(p)),
            (true, true) => format!("\r{}\n", bar_line(p)),
            (false, true) => format!("{}\n", bar_line(p)),
            (false, false) => return,
        };
        // Progress is a courtesy: a closed stderr must not stop the copy.
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
    }
}

/// Width of the bar, in characters.
const BAR_WIDTH: u64 = 30;

/// `tg_clients             [###############...............] 5000/10000`
fn bar_line(p: Progress) -> String {
    // An empty table is complete at once.
    let filled = (p.done.min(p.total) * BAR_WIDTH)
        .checked_div(p.total)
        .unwrap_or(BAR_WIDTH);
    let filled = usize::try_from(filled).unwrap_or_default();
    let empty = usize::try_from(BAR_WIDTH).unwrap_or_default() - filled;
    format!(
        "{:<22} [{}{}] {}/{}",
        p.table,
        "#".repeat(filled),
        ".".repeat(empty),
        p.done,
        p.total
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(done: u64, total: u64) -> Progress {
        let mut p = Progress::new("tg_clients", total);
        p.done = done;
        p
    }

    #[test]
    fn the_bar_fills_with_the_rows_done() {
        assert_eq!(
            bar_line(at(0, 10)),
            format!("{:<22} [{}] 0/10", "tg_clients", ".".repeat(30))
        );
        assert_eq!(
            bar_line(at(5, 10)),
            format!(
                "{:<22} [{}{}] 5/10",
                "tg_clients",
                "#".repeat(15),
                ".".repeat(15)
            )
        );
        assert_eq!(
            bar_line(at(10, 10)),
            format!("{:<22} [{}] 10/10", "tg_clients", "#".repeat(30))
        );
        // An empty table is complete at once.
        assert!(bar_line(at(0, 0)).contains(&"#".repeat(30)));
    }

    #[test]
    fn a_sqlite_target_naming_the_source_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("tollgate.db");
        std::fs::write(&db, b"").unwrap();
        let url = format!("sqlite://{}?mode=rwc", db.display());
        assert!(same_file(&db, &url));
        assert!(!same_file(&db, "postgres://h/db"));
        assert!(!same_file(
            &db,
            &format!("sqlite://{}/other.db", dir.path().display())
        ));
    }
}
