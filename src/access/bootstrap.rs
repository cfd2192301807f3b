//! The bootstrap token (`--bootstrap-token-file PATH`): how a container works out of the box
//! without shipping a token everyone knows.
//!
//! At the first start PATH does not exist: a new random token with every scope is written to
//! it (created exclusively, mode 0600 on Unix) and the process keeps only its hash. At later
//! starts the token is read back from PATH. Whoever may read PATH (on a container's volume:
//! whoever may `docker compose exec`) holds the token; nothing else learns it, and it is never
//! logged. Deleting PATH and restarting makes a new one (revoking the old).
//!
//! Replicas may share PATH (a shared volume) and start at once: the token is written to a file
//! of its own, synced, and then linked to PATH, which fails if PATH exists; the loser reads the
//! winner's token. So PATH never holds a partial token, and every replica ends up with the same.
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
    let hash = match read(path)? {
        Some(hash) => hash,
        None => match create(path).map_err(io)? {
            Some(token) => {
                tracing::info!(file = %path.display(), "made the bootstrap token (every scope); read it from the file");
                token.hash()
            }
            // Another process made it first.
            None => read(path)?
                .ok_or_else(|| io(std::io::Error::other("it vanished while being made")))?,
        },
    };
    Ok(TokenSpec {
        name: NAME.into(),
        scopes: Scopes::all(),
        services: None,
        hash,
        limits: TokenLimits::default(),
    })
}

/// The hash of the token in `path`; `None` when there is no such file.
fn read(path: &Path) -> Result<Option<TokenHash>, BootstrapError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(BootstrapError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let token = text.trim();
    let plausible = token.starts_with(TOKEN_PREFIX)
        && token.len() < 200
        && token.bytes().all(|b| b.is_ascii_graphic());
    if !plausible {
        return Err(BootstrapError::NotAToken {
            path: path.to_owned(),
        });
    }
    Ok(Some(TokenHash::of(token)))
}

/// Makes a token and puts it at `path` whole; `None` when `path` exists already.
fn create(path: &Path) -> std::io::Result<Option<Token>> {
    let token = Token::generate().map_err(std::io::Error::other)?;
    // Named after the token itself: unique even among processes with the same pid (containers).
    let unique = &token.hash().to_string()[7..23];
    let staged = path.with_extension(format!("new-{unique}"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&staged)?;
    let written = file
        .write_all(format!("{}\n", token.reveal()).as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::hard_link(&staged, path));
    let _ = std::fs::remove_file(&staged);
    match written {
        Ok(()) => Ok(Some(token)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(e),
    }
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
        // Many processes making it at once agree on one token.
        let shared = dir.path().join("shared");
        let made: Vec<TokenSpec> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| load_or_create(&shared).unwrap()))
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert!(made.iter().all(|m| *m == made[0]));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no staged file left"
        );
        std::fs::write(&path, "hunter2\n").unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(BootstrapError::NotAToken { .. })
        ));
    }
}
