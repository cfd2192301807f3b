//! Flags shared by the commands that use the store: where it is (`--cql-nodes`, `--keyspace`),
//! the deployment settings (`--bucket-width`, `--shards`, ...) and `serve`'s consistency levels.

use std::time::Duration;

use clap::Args;
use scylla::statement::Consistency;

use super::cql::CqlSecurityArgs;
use super::FlagError;
use crate::migrate::SettingsRequest;
use crate::store::cql::session::{level_name, parse_level, Purpose};
use crate::store::cql::{Keyspace, SessionConfig};

/// Where the store is. The flags are `global`, so `migrate` accepts them before and after its
/// action (`timebucket migrate up --cql-nodes HOST:9042`, as the README shows it).
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Comma-separated `host:port` contact points of the CQL cluster (an empty value: none).
    #[arg(
        long,
        env = "TIMEBUCKET_CQL_NODES",
        value_delimiter = ',',
        global = true
    )]
    pub cql_nodes: Vec<String>,
    /// The CQL keyspace.
    #[arg(
        long,
        env = "TIMEBUCKET_KEYSPACE",
        default_value = "timebucket",
        global = true
    )]
    pub keyspace: Keyspace,
    /// Credentials and TLS for the cluster.
    #[command(flatten)]
    pub security: CqlSecurityArgs,
}

impl StoreArgs {
    /// The contact points, each a `host:port`; empty when none was given (an empty
    /// `TIMEBUCKET_CQL_NODES=` included).
    pub fn nodes(&self) -> Result<Vec<String>, FlagError> {
        if self.cql_nodes.iter().all(String::is_empty) {
            return Ok(Vec::new());
        }
        for node in &self.cql_nodes {
            let port = node
                .rsplit_once(':')
                .map(|(host, port)| (host, port.parse::<u16>()));
            if !matches!(port, Some((host, Ok(_))) if !host.is_empty()) {
                return Err(FlagError::new(
                    "--cql-nodes",
                    format!("takes host:port contact points, got `{node}`"),
                ));
            }
        }
        Ok(self.cql_nodes.clone())
    }
}

/// The consistency levels of `serve`'s CQL session (see [`crate::store::cql::session`] for what
/// each choice trades). A level that cannot serve its purpose is refused by the flag's parser.
#[derive(Debug, Clone, Args)]
pub struct ConsistencyArgs {
    /// CQL consistency level of every write (ONE, TWO, THREE, QUORUM, ALL, LOCAL_QUORUM,
    /// EACH_QUORUM, LOCAL_ONE).
    #[arg(long, env = "TIMEBUCKET_WRITE_CONSISTENCY", value_parser = write_level,
          default_value = level_name(SessionConfig::DEFAULT_WRITE_CONSISTENCY))]
    pub write_consistency: Consistency,
    /// CQL consistency level of every read (ONE, TWO, THREE, QUORUM, ALL, LOCAL_QUORUM,
    /// LOCAL_ONE).
    #[arg(long, env = "TIMEBUCKET_READ_CONSISTENCY", value_parser = read_level,
          default_value = level_name(SessionConfig::DEFAULT_READ_CONSISTENCY))]
    pub read_consistency: Consistency,
}

impl ConsistencyArgs {
    /// The session's levels.
    pub fn config(&self) -> SessionConfig {
        SessionConfig {
            write_consistency: self.write_consistency,
            read_consistency: self.read_consistency,
        }
    }
}

fn write_level(text: &str) -> Result<Consistency, String> {
    parse_level(text, Purpose::Write)
}

fn read_level(text: &str) -> Result<Consistency, String> {
    parse_level(text, Purpose::Read)
}

/// The deployment settings (bucket width, shards, retention, compaction window). They are fixed
/// when a store is created — by `migrate up` for a CQL keyspace, by the first `serve` for the
/// embedded store — and afterwards must match what is recorded, or be left out.
#[derive(Debug, Clone, Args)]
pub struct SettingsArgs {
    /// Width of a time bucket (default 1h): most queries should touch two buckets.
    #[arg(long, env = "TIMEBUCKET_BUCKET_WIDTH", value_parser = humantime::parse_duration)]
    pub bucket_width: Option<Duration>,
    /// Shards per service bucket (default 4), against hot partitions.
    #[arg(long, env = "TIMEBUCKET_SHARDS")]
    pub shards: Option<u16>,
    /// Partitions of the latest-readings tables (default 16).
    #[arg(long, env = "TIMEBUCKET_LATEST_SHARDS")]
    pub latest_shards: Option<u16>,
    /// Retention: the TTL of readings (default 7d).
    #[arg(long, env = "TIMEBUCKET_RETENTION", value_parser = humantime::parse_duration)]
    pub retention: Option<Duration>,
    /// TimeWindowCompactionStrategy window (default 6h): whole hours, a multiple of the bucket.
    #[arg(long, env = "TIMEBUCKET_COMPACTION_WINDOW", value_parser = humantime::parse_duration)]
    pub compaction_window: Option<Duration>,
    /// Retention of the per-minute rollups (default 35d, at most 50d).
    #[arg(long, env = "TIMEBUCKET_ROLLUP_MINUTE_RETENTION", value_parser = humantime::parse_duration)]
    pub rollup_minute_retention: Option<Duration>,
    /// Retention of the per-hour rollups (default 400d, at most 500d).
    #[arg(long, env = "TIMEBUCKET_ROLLUP_HOUR_RETENTION", value_parser = humantime::parse_duration)]
    pub rollup_hour_retention: Option<Duration>,
}

impl SettingsArgs {
    /// The settings flags as a request; durations must be whole seconds that fit in 32 bits.
    /// How the values relate to each other is checked where settings are chosen
    /// ([`SettingsRequest::resolve_fresh`]).
    pub fn request(&self) -> Result<SettingsRequest, FlagError> {
        let seconds = |flag: &'static str, d: Option<Duration>| -> Result<Option<u32>, FlagError> {
            d.map(|d| {
                if d.subsec_nanos() != 0 {
                    return Err(FlagError::new(flag, "must be whole seconds"));
                }
                u32::try_from(d.as_secs()).map_err(|_| FlagError::new(flag, "is too long"))
            })
            .transpose()
        };
        Ok(SettingsRequest {
            bucket_width_seconds: seconds("--bucket-width", self.bucket_width)?,
            shards: self.shards,
            latest_shards: self.latest_shards,
            ttl_seconds: seconds("--retention", self.retention)?,
            compaction_window_seconds: seconds("--compaction-window", self.compaction_window)?,
            rollup_minute_ttl_seconds: seconds(
                "--rollup-minute-retention",
                self.rollup_minute_retention,
            )?,
            rollup_hour_ttl_seconds: seconds(
                "--rollup-hour-retention",
                self.rollup_hour_retention,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(nodes: &[&str]) -> StoreArgs {
        StoreArgs {
            cql_nodes: nodes.iter().map(|n| n.to_string()).collect(),
            keyspace: "timebucket".parse().unwrap(),
            security: CqlSecurityArgs {
                cql_username: None,
                cql_password_file: None,
                cql_tls: false,
                cql_ca_file: None,
            },
        }
    }

    #[test]
    fn contact_points_must_be_host_and_port() {
        assert_eq!(
            store(&["10.0.0.1:9042", "db:9042"]).nodes().unwrap(),
            ["10.0.0.1:9042", "db:9042"]
        );
        assert!(store(&[]).nodes().unwrap().is_empty());
        assert!(store(&[""]).nodes().unwrap().is_empty());
        for bad in ["", "db", ":9042", "db:port", "db:70000"] {
            let error = store(&["db:9042", bad]).nodes().unwrap_err();
            assert_eq!(error.flag, "--cql-nodes", "{bad}");
        }
    }

    #[test]
    fn settings_durations_must_be_whole_seconds() {
        let args = SettingsArgs {
            bucket_width: Some(Duration::from_millis(1500)),
            shards: None,
            latest_shards: None,
            retention: None,
            compaction_window: None,
            rollup_minute_retention: None,
            rollup_hour_retention: None,
        };
        assert_eq!(args.request().unwrap_err().flag, "--bucket-width");
    }
}
