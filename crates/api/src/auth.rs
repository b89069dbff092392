//! Bearer tokens with scopes. Tokens live in a TOML file as SHA-256 hashes (the secret itself
//! is printed once, by `clientlog token create`, and never stored). With no token configured,
//! authentication is off and the server only binds loopback (enforced by the caller of
//! [`crate::build`]).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use axum::http::{header, HeaderMap};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// What a token may do. `admin` implies every other scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Append,
    Read,
    Audit,
    Analyze,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Append,
        Scope::Read,
        Scope::Audit,
        Scope::Analyze,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Append => "append",
            Scope::Read => "read",
            Scope::Audit => "audit",
            Scope::Analyze => "analyze",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }
}

/// Why the token file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("while reading {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid token file")]
    Parse {
        path: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("{path}: token {name:?}: {problem}")]
    Invalid {
        path: String,
        name: String,
        problem: String,
    },
    #[error("while writing {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    BadRequest(String),
}

/// One stored token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    pub name: String,
    /// Hex SHA-256 of the secret.
    pub sha256: String,
    pub scopes: Vec<String>,
    /// RFC 3339, for the operator.
    pub created_at: String,
}

/// The token file: `[[tokens]]` tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFile {
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TokenFile {
    /// Loads `path`; a missing file is an empty one.
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(TokenFileError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let file: TokenFile = toml::from_str(&text).map_err(|source| TokenFileError::Parse {
            path: path.display().to_string(),
            source,
        })?;
        for entry in &file.tokens {
            let invalid = |problem: String| TokenFileError::Invalid {
                path: path.display().to_string(),
                name: entry.name.clone(),
                problem,
            };
            if entry.sha256.len() != 64 || !entry.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid("sha256 must be 64 hex digits".into()));
            }
            for scope in &entry.scopes {
                if Scope::parse(scope).is_none() {
                    return Err(invalid(format!("unknown scope {scope:?}")));
                }
            }
        }
        Ok(file)
    }

    /// Adds a token named `name` with `scopes`, writes the file (mode 0600) and returns the
    /// secret, which is not stored anywhere.
    pub fn create(
        path: &Path,
        name: &str,
        scopes: &[Scope],
        created_at: String,
    ) -> Result<String, TokenFileError> {
        if name.trim().is_empty() {
            return Err(TokenFileError::BadRequest(
                "--name must not be empty".into(),
            ));
        }
        if scopes.is_empty() {
            return Err(TokenFileError::BadRequest(
                "give at least one scope: append, read, audit, analyze, admin".into(),
            ));
        }
        let mut file = Self::load(path)?;
        if file.tokens.iter().any(|t| t.name == name) {
            return Err(TokenFileError::BadRequest(format!(
                "a token named {name:?} already exists in {}",
                path.display()
            )));
        }
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let token = format!("clt_{}", hex(&secret));
        file.tokens.push(TokenEntry {
            name: name.to_string(),
            sha256: sha256_hex(token.as_bytes()),
            scopes: scopes.iter().map(|s| s.as_str().to_string()).collect(),
            created_at,
        });
        let text =
            toml::to_string_pretty(&file).map_err(|e| TokenFileError::BadRequest(e.to_string()))?;
        let write = |source| TokenFileError::Write {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut out = options.open(&tmp).map_err(write)?;
            out.write_all(
                b"# clientlog API tokens: SHA-256 of each secret, never the secret itself.\n",
            )
            .and_then(|()| out.write_all(text.as_bytes()))
            .and_then(|()| out.sync_all())
            .map_err(write)?;
        }
        std::fs::rename(&tmp, path).map_err(write)?;
        Ok(token)
    }
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
}

/// The token check the handlers call.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    by_hash: HashMap<String, (String, BTreeSet<Scope>)>,
}

impl Auth {
    pub fn new(file: &TokenFile) -> Self {
        let by_hash = file
            .tokens
            .iter()
            .map(|t| {
                let scopes = t.scopes.iter().filter_map(|s| Scope::parse(s)).collect();
                (t.sha256.to_ascii_lowercase(), (t.name.clone(), scopes))
            })
            .collect();
        Self { by_hash }
    }

    /// No token configured: every request is allowed (loopback only).
    pub fn is_open(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Checks the request's bearer token for `scope`: 401 without a valid token, 403 with a
    /// token that lacks the scope.
    pub fn check(&self, headers: &HeaderMap, scope: Scope) -> Result<Option<Principal>, ApiError> {
        if self.is_open() {
            return Ok(None);
        }
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::Unauthenticated(
                "send `Authorization: Bearer <token>`",
            ))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (kind, token) = v.trim().split_once(' ')?;
                kind.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or(ApiError::Unauthenticated(
                "the Authorization header must be `Bearer <token>`",
            ))?;
        let (name, scopes) = self
            .by_hash
            .get(&sha256_hex(token.as_bytes()))
            .ok_or(ApiError::Unauthenticated("unknown token"))?;
        if scopes.contains(&scope) || scopes.contains(&Scope::Admin) {
            Ok(Some(Principal { name: name.clone() }))
        } else {
            Err(ApiError::Forbidden(scope.as_str()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn created_tokens_authenticate_with_their_scopes_only() {
        let dir = std::env::temp_dir().join(format!("clientlog-auth-{}", uuid::Uuid::new_v4()));
        let path = dir.join("tokens.toml");
        let reader = TokenFile::create(&path, "crm", &[Scope::Read], "now".into()).unwrap();
        let admin = TokenFile::create(&path, "ops", &[Scope::Admin], "now".into()).unwrap();
        assert!(TokenFile::create(&path, "crm", &[Scope::Read], "now".into()).is_err());
        let file = TokenFile::load(&path).unwrap();
        assert!(!std::fs::read_to_string(&path).unwrap().contains(&reader));
        let auth = Auth::new(&file);
        let headers = |t: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
            );
            h
        };
        assert!(auth.check(&headers(&reader), Scope::Read).is_ok());
        assert!(matches!(
            auth.check(&headers(&reader), Scope::Append),
            Err(ApiError::Forbidden(_))
        ));
        assert!(auth.check(&headers(&admin), Scope::Audit).is_ok());
        assert!(matches!(
            auth.check(&headers("nope"), Scope::Read),
            Err(ApiError::Unauthenticated(_))
        ));
        assert!(matches!(
            auth.check(&HeaderMap::new(), Scope::Read),
            Err(ApiError::Unauthenticated(_))
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
