//! The settings an operator asks for at `migrate up`, reconciled with what is recorded.

use super::MigrateError;
use crate::model::{BucketWidth, Settings, ShardCount};

/// Settings flags given to `migrate up`; `None` means "the recorded value, or the default".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettingsRequest {
    /// `--bucket-width`, seconds.
    pub bucket_width_seconds: Option<u32>,
    /// `--shards`.
    pub shards: Option<u16>,
    /// `--latest-shards`.
    pub latest_shards: Option<u16>,
    /// `--retention`, seconds.
    pub ttl_seconds: Option<u32>,
    /// `--compaction-window`, seconds.
    pub compaction_window_seconds: Option<u32>,
}

impl SettingsRequest {
    /// The settings for a keyspace that has none yet: the requested values over the defaults.
    pub fn resolve_fresh(&self) -> Result<Settings, MigrateError> {
        let base = Settings::default();
        let invalid = MigrateError::InvalidSettings;
        let settings = Settings {
            bucket_width: match self.bucket_width_seconds {
                Some(s) => BucketWidth::from_seconds(s).map_err(invalid)?,
                None => base.bucket_width,
            },
            shards: match self.shards {
                Some(n) => ShardCount::new(n).map_err(invalid)?,
                None => base.shards,
            },
            latest_shards: match self.latest_shards {
                Some(n) => ShardCount::new(n).map_err(invalid)?,
                None => base.latest_shards,
            },
            ttl_seconds: self.ttl_seconds.unwrap_or(base.ttl_seconds),
            compaction_window_seconds: self
                .compaction_window_seconds
                .unwrap_or(base.compaction_window_seconds),
        };
        settings.validate().map_err(MigrateError::InvalidSettings)?;
        Ok(settings)
    }

    /// Checks that every requested value equals the recorded one.
    pub fn check_against(&self, recorded: &Settings) -> Result<(), MigrateError> {
        let requested = [
            (
                "bucket_width_seconds",
                self.bucket_width_seconds.map(i64::from),
            ),
            ("shard_count", self.shards.map(i64::from)),
            ("latest_shard_count", self.latest_shards.map(i64::from)),
            ("ttl_seconds", self.ttl_seconds.map(i64::from)),
            (
                "compaction_window_seconds",
                self.compaction_window_seconds.map(i64::from),
            ),
        ];
        for ((name, recorded), (_, requested)) in recorded.to_pairs().into_iter().zip(requested) {
            match requested {
                Some(requested) if requested != recorded => {
                    return Err(MigrateError::SettingsConflict {
                        name,
                        recorded,
                        requested,
                    })
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_settings_take_requests_over_defaults() {
        let request = SettingsRequest {
            bucket_width_seconds: Some(1800),
            ..Default::default()
        };
        let settings = request.resolve_fresh().unwrap();
        assert_eq!(settings.bucket_width.seconds(), 1800);
        assert_eq!(settings.shards, Settings::default().shards);
    }

    #[test]
    fn a_different_request_conflicts_with_the_record() {
        let recorded = Settings::default();
        let same = SettingsRequest {
            shards: Some(recorded.shards.get()),
            ..Default::default()
        };
        assert!(same.check_against(&recorded).is_ok());
        let other = SettingsRequest {
            shards: Some(recorded.shards.get() + 1),
            ..Default::default()
        };
        assert!(matches!(
            other.check_against(&recorded),
            Err(MigrateError::SettingsConflict {
                name: "shard_count",
                ..
            })
        ));
    }
}
