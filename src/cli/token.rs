//! `timebucket token new`: makes a token and prints it once, with the `[[token]]` table (its
//! hash, never the token) to append to the config file.

use std::collections::BTreeSet;
use std::num::NonZeroU32;

use clap::{Args, Subcommand};

use super::FlagError;
use crate::access::{tokens_file, Scopes, Token, TokenLimits, TokenSpec};
use crate::model::ServiceName;

/// `timebucket token` actions.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: TokenAction,
}

/// What `timebucket token` does.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Make a token: prints it once, then the lines to append to the config file.
    New(NewTokenArgs),
}

/// `timebucket token new` flags.
#[derive(Debug, Args)]
pub struct NewTokenArgs {
    /// Its name (letters, digits, `-`, `_`, `.`): in logs, /metrics and errors.
    #[arg(long)]
    pub name: String,
    /// Comma-separated scopes: read, write, admin.
    #[arg(long, value_delimiter = ',', required = true)]
    pub scope: Vec<String>,
    /// Comma-separated services it may read or write (all when left out).
    #[arg(long, value_delimiter = ',')]
    pub services: Vec<String>,
    /// Readings per second it may send (a token bucket); no limit when left out.
    #[arg(long)]
    pub readings_per_second: Option<NonZeroU32>,
    /// Readings it may send at once after a quiet spell (default: --readings-per-second).
    #[arg(long, requires = "readings_per_second")]
    pub burst: Option<NonZeroU32>,
    /// Distinct series per service per time bucket it may write; no limit when left out.
    #[arg(long)]
    pub max_series_per_bucket: Option<NonZeroU32>,
}

impl NewTokenArgs {
    /// A new token and its entry; the flags are checked like the tokens file's keys.
    pub fn make(&self) -> Result<(Token, TokenSpec), FlagError> {
        let scopes = Scopes::parse(self.scope.iter().map(String::as_str))
            .map_err(|e| FlagError::new("--scope", e))?;
        let services = if self.services.is_empty() {
            None
        } else {
            let parsed = self
                .services
                .iter()
                .map(|s| ServiceName::parse(s).map_err(|e| format!("`{s}`: {e}")))
                .collect::<Result<BTreeSet<_>, _>>()
                .map_err(|e| FlagError::new("--services", e))?;
            Some(parsed)
        };
        let token = Token::generate()
            .map_err(|e| FlagError::new("--name", format!("cannot make a random token: {e}")))?;
        let spec = TokenSpec {
            name: self.name.clone(),
            scopes,
            services,
            hash: token.hash(),
            limits: TokenLimits {
                readings_per_second: self.readings_per_second,
                burst: self.burst,
                max_series_per_bucket: self.max_series_per_bucket,
            },
        };
        // The name's rules are the file's: render and parse back.
        tokens_file::parse(&tokens_file::render(&spec), "the new token".as_ref())
            .map_err(|e| FlagError::new("--name", e.to_string()))?;
        Ok((token, spec))
    }
}

/// What `timebucket token new` prints.
pub fn new_token_text(token: &Token, spec: &TokenSpec) -> String {
    format!(
        "{}\n\n# The token above is shown once: give it to the client. Append these lines to the\n\
         # config file (they hold its hash, not the token), then reload (SIGHUP or POST /-/reload):\n{}",
        token.reveal(),
        tokens_file::render(spec)
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn new(flags: &[&str]) -> Result<(Token, TokenSpec), String> {
        let argv = ["timebucket", "token", "new"].iter().chain(flags);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let Command::Token(TokenArgs {
            action: TokenAction::New(args),
        }) = cli.command
        else {
            panic!("not token new")
        };
        args.make().map_err(|e| e.to_string())
    }

    #[test]
    fn the_printed_lines_parse_back_to_the_token() {
        let flags = [
            "--name",
            "ci-writer",
            "--scope",
            "write",
            "--services",
            "checkout,search",
        ];
        let (token, spec) = new(&flags).unwrap();
        let text = new_token_text(&token, &spec);
        assert_eq!(text.lines().next(), Some(token.reveal()));
        let (_, appended) = text.split_once('\n').unwrap();
        let parsed = tokens_file::parse(appended, "out".as_ref()).unwrap();
        assert_eq!(parsed, vec![spec]);
        assert!(parsed[0].hash.matches(&token.hash()));
        // The token appears once: the first line.
        assert_eq!(text.matches(token.reveal()).count(), 1);
    }

    #[test]
    fn bad_flags_are_named() {
        assert!(new(&["--name", "a b", "--scope", "read"])
            .unwrap_err()
            .contains("--name"));
        assert!(new(&["--name", "a", "--scope", "reed"])
            .unwrap_err()
            .contains("--scope"));
        assert!(new(&["--name", "a", "--scope", "read", "--services", ""])
            .unwrap_err()
            .contains("--services"));
        assert!(new(&["--name", "a", "--scope", "write", "--burst", "5"]).is_err());
    }
}
