//! Importing an incumbent's users in bulk (`user import`): one line per
//! user, CSV (`username,hash[,input]`) or JSON lines (`{"username",
//! "hash", "input"}`), hashes kept as the incumbent stored them (MD5,
//! bcrypt, argon2; see `crypto::imported`). Every line is checked before
//! anything is written, and the users are written in one transaction: a
//! malformed line is reported with its number and nothing is imported.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use crate::crypto::imported::{HashInput, store_form};
use crate::error::CoreError;
use crate::model::User;
use crate::service::{Tollgate, conflict};
use crate::time::now;

/// The layout of an import file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// `username,hash[,input]`; an optional header line; `#` comments.
    Csv,
    /// One JSON object per line: `username`, `hash`, optional `input`.
    Jsonl,
}

impl ImportFormat {
    /// By the file's name (`.csv`, `.jsonl`, `.ndjson`), else by its first
    /// line (`{` is JSON lines).
    pub fn guess(file_name: &str, first_line: &str) -> Self {
        let lower = file_name.to_ascii_lowercase();
        if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
            ImportFormat::Jsonl
        } else if lower.ends_with(".csv") {
            ImportFormat::Csv
        } else if first_line.trim_start().starts_with('{') {
            ImportFormat::Jsonl
        } else {
            ImportFormat::Csv
        }
    }
}

/// One user read from an import file.
#[derive(Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// Its line number (from 1).
    pub line: usize,
    /// Login name.
    pub username: String,
    /// The password as it will be stored (`imported:<input>:<hash>`).
    pub stored: String,
}

impl std::fmt::Debug for ImportRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportRow")
            .field("line", &self.line)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct JsonRow {
    username: String,
    hash: String,
    #[serde(default)]
    input: Option<String>,
}

fn at(line: usize, why: impl std::fmt::Display) -> CoreError {
    CoreError::invalid("import file", format!("line {line}: {why}"))
}

/// Reads line `line` (numbered from 1) of an import file; `None` for a
/// blank line, a comment or the CSV header. `input` is what the hashes are
/// of, unless the line says.
pub fn parse_line(
    format: ImportFormat,
    line: usize,
    text: &str,
    input: HashInput,
) -> Result<Option<ImportRow>, CoreError> {
    let t = text.trim();
    if t.is_empty() || t.starts_with('#') {
        return Ok(None);
    }
    let (username, hash, own_input) = match format {
        ImportFormat::Jsonl => {
            let r: JsonRow = serde_json::from_str(t).map_err(|e| at(line, e))?;
            (r.username, r.hash, r.input)
        }
        ImportFormat::Csv => {
            let unquote = |f: &str| f.trim().trim_matches('"').to_string();
            let fields: Vec<String> = t.split(',').map(unquote).collect();
            match fields.as_slice() {
                [u, ..] if line == 1 && u.eq_ignore_ascii_case("username") => return Ok(None),
                [u, h] => (u.clone(), h.clone(), None),
                [u, h, i] => (u.clone(), h.clone(), Some(i.clone())),
                _ => {
                    return Err(at(
                        line,
                        format!("{} fields (write username,hash[,input])", fields.len()),
                    ));
                }
            }
        }
    };
    let input = match own_input.filter(|i| !i.is_empty()) {
        Some(i) => i.parse().map_err(|e| at(line, e))?,
        None => input,
    };
    let stored = store_form(input, &hash).map_err(|e| at(line, e))?;
    let user = User {
        env: String::new(),
        client_id: String::new(),
        username: username.clone(),
        password: String::new(),
        enabled: true,
        roles: Default::default(),
        created_at: 0,
    };
    user.validate().map_err(|e| at(line, e))?;
    Ok(Some(ImportRow {
        line,
        username,
        stored,
    }))
}

impl Tollgate {
    /// Creates the users of `rows` for client `client_id`, all or none:
    /// a username twice in the file, or one that exists, is refused with
    /// its line number before anything is written. Returns how many.
    pub async fn import_users(
        &self,
        env: &str,
        client_id: &str,
        rows: Vec<ImportRow>,
    ) -> Result<usize, CoreError> {
        self.require_env(env).await?;
        self.get_client(env, client_id).await?;
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &rows {
            if let Some(first) = seen.insert(&r.username, r.line) {
                return Err(at(
                    r.line,
                    format!("user '{}' is on line {first} already", r.username),
                ));
            }
        }
        let existing: HashSet<String> = self
            .store
            .list_users(env, None)
            .await?
            .into_iter()
            .map(|u| u.username)
            .collect();
        if let Some(r) = rows.iter().find(|r| existing.contains(&r.username)) {
            return Err(at(r.line, format!("user '{}' exists already", r.username)));
        }
        let t = now();
        let users: Vec<User> = rows
            .into_iter()
            .map(|r| User {
                env: env.to_string(),
                client_id: client_id.to_string(),
                username: r.username,
                password: r.stored,
                enabled: true,
                roles: Default::default(),
                created_at: t,
            })
            .collect();
        // Someone else may have created one in the meantime: the store
        // refuses the whole import then.
        self.store
            .import_users(&users)
            .await
            .map_err(|e| conflict(e, "user (created while importing)", "one of the file's"))?;
        Ok(users.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lines_are_read_or_refused_with_their_number() {
        let csv = ImportFormat::Csv;
        let md5 = "5f4dcc3b5aa765d61d8327deb882cf99";
        assert!(
            parse_line(csv, 1, "username,hash", HashInput::Password)
                .unwrap()
                .is_none()
        );
        assert!(
            parse_line(csv, 2, "  # a comment", HashInput::Password)
                .unwrap()
                .is_none()
        );
        let r = parse_line(csv, 3, &format!("a@example.com,{md5}"), HashInput::Password)
            .unwrap()
            .unwrap();
        assert_eq!(r.stored, format!("imported:password:{md5}"));
        let r = parse_line(
            csv,
            4,
            &format!("\"dev1\",\"{md5}\",md5"),
            HashInput::Password,
        )
        .unwrap()
        .unwrap();
        assert_eq!((r.username.as_str(), r.line), ("dev1", 4));
        assert!(r.stored.starts_with("imported:md5:"));
        let e = parse_line(csv, 7, "only-a-name", HashInput::Password).unwrap_err();
        assert!(e.to_string().contains("line 7"), "{e}");
        let e = parse_line(csv, 8, "u,not-a-hash", HashInput::Password).unwrap_err();
        assert!(e.to_string().contains("line 8"), "{e}");
        let j = ImportFormat::Jsonl;
        let r = parse_line(
            j,
            1,
            &format!(r#"{{"username":"x","hash":"{md5}"}}"#),
            HashInput::Md5,
        )
        .unwrap()
        .unwrap();
        assert!(r.stored.starts_with("imported:md5:"));
        assert!(parse_line(j, 9, "{not json", HashInput::Md5).is_err());
        assert_eq!(
            ImportFormat::guess("users.txt", "{\"a\":1}"),
            ImportFormat::Jsonl
        );
        assert_eq!(ImportFormat::guess("USERS.CSV", "{"), ImportFormat::Csv);
    }
}
