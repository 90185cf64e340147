//! API tokens: random bearer tokens with a role, stored only as SHA-256 hashes in the state
//! database. A token is shown once, when created.
//!
//! Tokens carry 256 bits of randomness, so a plain SHA-256 (not a slow password hash) is the
//! right tool: nothing can be guessed offline from the hash.

use std::path::Path;
use std::sync::Mutex;

use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Write data (agents, the API server's webhook); no reading.
    Ingest,
    /// Read data and alerts; no writing.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Ingest => "ingest",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "ingest" => Some(Role::Ingest),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// Whether this role may write data.
    pub fn may_ingest(self) -> bool {
        matches!(self, Role::Admin | Role::Ingest)
    }

    /// Whether this role may read data and alerts.
    pub fn may_read(self) -> bool {
        matches!(self, Role::Admin | Role::Viewer)
    }
}

/// A token as listed (never its value).
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub created_at: String,
}

/// The caller a valid token identifies.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

/// Token errors.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("a token named {0:?} exists already")]
    Exists(String),
    #[error("no token named {0:?}")]
    NotFound(String),
    #[error("token names are 1-64 characters of letters, digits, '-', '_' and '.'")]
    BadName,
}

/// Tokens in the state database.
#[derive(Debug)]
pub struct TokenStore {
    conn: Mutex<Connection>,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl TokenStore {
    /// Opens (or creates) the token table in the database at `path`.
    pub fn open(path: &Path) -> Result<Self, TokenError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS tokens (
                name TEXT PRIMARY KEY,
                role TEXT NOT NULL,
                hash TEXT NOT NULL UNIQUE,
                created_at TEXT NOT NULL
            )",
        )?;
        Ok(TokenStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates a token and returns its value (`kst_` + 64 hex digits); only its hash is kept.
    pub fn create(&self, name: &str, role: Role) -> Result<String, TokenError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(TokenError::BadName);
        }
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let token = format!("kst_{}", hex::encode(secret));
        let conn = self.conn();
        let res = conn.execute(
            "INSERT INTO tokens (name, role, hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                name,
                role.as_str(),
                hash(&token),
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ],
        );
        match res {
            Ok(_) => Ok(token),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(TokenError::Exists(name.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every token, by name.
    pub fn list(&self) -> Result<Vec<TokenInfo>, TokenError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT name, role, created_at FROM tokens ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            let role: String = r.get(1)?;
            Ok(TokenInfo {
                name: r.get(0)?,
                role: Role::parse(&role).unwrap_or(Role::Viewer),
                created_at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Deletes a token; it stops working at once.
    pub fn revoke(&self, name: &str) -> Result<(), TokenError> {
        let n = self
            .conn()
            .execute("DELETE FROM tokens WHERE name = ?1", params![name])?;
        if n == 0 {
            return Err(TokenError::NotFound(name.to_string()));
        }
        Ok(())
    }

    /// The principal a presented token belongs to, if it is valid.
    pub fn verify(&self, token: &str) -> Result<Option<Principal>, TokenError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT name, role FROM tokens WHERE hash = ?1",
                params![hash(token)],
                |r| {
                    let role: String = r.get(1)?;
                    Ok(Principal {
                        name: r.get(0)?,
                        role: Role::parse(&role).unwrap_or(Role::Viewer),
                    })
                },
            )
            .optional()?)
    }

    /// Whether a token with this name exists.
    pub fn exists(&self, name: &str) -> Result<bool, TokenError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM tokens WHERE name = ?1",
                params![name],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_hashed_and_revocable() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let store = TokenStore::open(&db).unwrap();
        let t = store.create("ci", Role::Ingest).unwrap();
        assert!(t.starts_with("kst_") && t.len() == 68);
        assert!(matches!(
            store.create("ci", Role::Admin),
            Err(TokenError::Exists(_))
        ));
        assert!(matches!(
            store.create("bad name", Role::Admin),
            Err(TokenError::BadName)
        ));
        let p = store.verify(&t).unwrap().unwrap();
        assert_eq!((p.name.as_str(), p.role), ("ci", Role::Ingest));
        assert!(store.verify("kst_wrong").unwrap().is_none());
        drop(store);
        let raw = std::fs::read(&db).unwrap();
        assert!(
            !raw.windows(t.len()).any(|w| w == t.as_bytes()),
            "token stored in clear"
        );
        let store = TokenStore::open(&db).unwrap();
        assert_eq!(store.list().unwrap().len(), 1);
        store.revoke("ci").unwrap();
        assert!(store.verify(&t).unwrap().is_none());
        assert!(matches!(store.revoke("ci"), Err(TokenError::NotFound(_))));
    }
}
