//! Tokens, their hashes and their scopes.
//!
//! A token is `tb_` followed by 43 characters of URL-safe base64: 32 bytes from the operating
//! system's random source (256 bits, so guessing one is hopeless and no key stretching is
//! needed). The server keeps only `sha256:<64 hex digits>` of each token; a presented token is
//! hashed and compared with every configured hash in constant time ([`subtle`]), so neither the
//! comparison nor the order of the configured tokens says anything about how close a guess was.
//!
//! Invariant: the plain token is never stored by the server, never logged, and never part of a
//! `Debug` or `Display` output of this module's types.

use std::collections::BTreeSet;
use std::fmt;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The prefix of every token: tells a timebucket token from other secrets (and secret scanners
/// can look for it).
pub const TOKEN_PREFIX: &str = "tb_";
/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;
/// The prefix of a hash in the config file: names the algorithm, so another can follow.
const HASH_PREFIX: &str = "sha256:";
/// Longest `Authorization` credential looked at, bytes: a token is 46; anything far longer is
/// refused before it is hashed.
pub const MAX_CREDENTIAL_BYTES: usize = 512;

/// A plain token, as `timebucket token new` prints it once.
pub struct Token(String);

impl Token {
    /// A new random token.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes)?;
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Ok(Self(format!("{TOKEN_PREFIX}{text}")))
    }

    /// The token's text: print it once, never log it.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// Its hash, as the config file holds it.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The SHA-256 of a token.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of `credential` (a token as presented by a client).
    pub fn of(credential: &str) -> Self {
        Self(Sha256::digest(credential.as_bytes()).into())
    }

    /// Parses `sha256:<64 hex digits>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let problem = || {
            format!("must be `{HASH_PREFIX}` and 64 hex digits (from `timebucket token new`), got `{text}`")
        };
        let hex = text.strip_prefix(HASH_PREFIX).ok_or_else(problem)?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(problem());
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| problem())?;
        }
        Ok(Self(bytes))
    }

    /// Compares in constant time.
    pub fn matches(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(HASH_PREFIX)?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({self})")
    }
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Queries, the console, the Prometheus API, `/v1/targets`, alerts and rules (and `/metrics`).
    Read,
    /// Ingest: `POST /v1/metrics`, OTLP/HTTP and OTLP/gRPC.
    Write,
    /// `POST /-/reload` (tokens, TLS certificates, scrape config, rules).
    Admin,
}

impl Scope {
    /// Every scope, in the order they are written.
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    /// Its name in the config file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    /// Parses `read`, `write` or `admin`.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| format!("unknown scope `{text}`: use read, write or admin"))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scopes of one token (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    /// The scopes named in `names`; an empty list is refused.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let set = names
            .into_iter()
            .map(|n| Scope::parse(n.trim()))
            .collect::<Result<BTreeSet<_>, _>>()?;
        if set.is_empty() {
            return Err("must name at least one scope: read, write or admin".into());
        }
        Ok(Self(set))
    }

    /// Every scope: what a server without tokens grants.
    pub fn all() -> Self {
        Self(Scope::ALL.into_iter().collect())
    }

    /// True when `scope` is one of them.
    pub fn has(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    /// The scopes, in order.
    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Scope::as_str).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_prefixed_random_and_hashes_to_what_the_file_holds() {
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        assert!(a.reveal().starts_with(TOKEN_PREFIX));
        assert_eq!(a.reveal().len(), TOKEN_PREFIX.len() + 43);
        assert_ne!(a.reveal(), b.reveal());
        let written = a.hash().to_string();
        let read = TokenHash::parse(&written).unwrap();
        assert!(read.matches(&TokenHash::of(a.reveal())));
        assert!(!read.matches(&TokenHash::of(b.reveal())));
        assert!(!format!("{a:?} {read:?}").contains(a.reveal()));
    }

    #[test]
    fn hashes_and_scopes_are_checked_by_name() {
        for bad in [
            "",
            "sha256:",
            "md5:00",
            &format!("sha256:{}", "g".repeat(64)),
        ] {
            assert!(TokenHash::parse(bad).is_err(), "{bad}");
        }
        // The known SHA-256 of "abc".
        let abc = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(TokenHash::of("abc").to_string(), abc);
        let scopes = Scopes::parse(["write", "read"]).unwrap();
        assert_eq!(scopes.to_string(), "read,write");
        assert!(scopes.has(Scope::Write) && !scopes.has(Scope::Admin));
        assert!(Scopes::parse(["writer"]).unwrap_err().contains("`writer`"));
        assert!(Scopes::parse([]).is_err());
    }
}
