//! The bootstrap token (`--bootstrap-token-file PATH`): how a container works out of the box
//! without shipping a token everyone knows.
//!
//! At the first start PATH does not exist: a new random token with every scope is written to
//! it (created exclusively, mode 0600 on Unix) and the process keeps only its hash. At later
//! starts the token is read back from PATH. Whoever may read PATH (on a container's volume:
//! whoever may `docker compose exec`) holds the token; nothing else learns it, and it is never
//! logged. Deleting PATH and restarting makes a new one (revoking the old).
//!
//! The token is named `bootstrap` and kept across reloads of the tokens file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::token::{Scopes, Token, TokenHash, TOKEN_PREFIX};
use super::tokens_file::{TokenLimits, TokenSpec};

/// The bootstrap token's name.
pub const NAME: &str = "bootstrap";

/// Why the bootstrap token cannot be made or read.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The file cannot be read or created.
    #[error("bootstrap token file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold a token.
    #[error("bootstrap token file {} does not hold a timebucket token (`{TOKEN_PREFIX}...`); delete it to make a new one", path.display())]
    NotAToken {
        /// The file.
        path: PathBuf,
    },
    /// The operating system gave no random bytes.
    #[error("cannot make a random token: {0}")]
    Random(getrandom::Error),
}

/// The bootstrap token's entry: read from `path`, or made there when it does not exist.
pub fn load_or_create(path: &Path) -> Result<TokenSpec, BootstrapError> {
    let io = |source| BootstrapError::Io {
        path: path.to_owned(),
        source,
    };
    let hash = match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim();
            let plausible = token.starts_with(TOKEN_PREFIX)
                && token.len() < 200
                && token.bytes().all(|b| b.is_ascii_graphic());
            if !plausible {
                return Err(BootstrapError::NotAToken {
                    path: path.to_owned(),
                });
            }
            TokenHash::of(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = Token::generate().map_err(BootstrapError::Random)?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(io)?;
            file.write_all(format!("{}\n", token.reveal()).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io)?;
            tracing::info!(file = %path.display(), "made the bootstrap token (every scope); read it from the file");
            token.hash()
        }
        Err(e) => return Err(io(e)),
    };
    Ok(TokenSpec {
        name: NAME.into(),
        scopes: Scopes::all(),
        services: None,
        hash,
        limits: TokenLimits::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_start_makes_the_token_and_later_starts_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let made = load_or_create(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(made.hash.matches(&TokenHash::of(text.trim())));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let read = load_or_create(&path).unwrap();
        assert_eq!(read, made);
        std::fs::write(&path, "hunter2\n").unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(BootstrapError::NotAToken { .. })
        ));
    }
}
