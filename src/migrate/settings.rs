//! The settings an operator asks for at `migrate up`, reconciled with what is recorded.

use std::fmt;
use std::time::Duration;

use super::MigrateError;
use crate::model::settings::RollupRetention;
use crate::model::{BucketWidth, Settings, ShardCount};

/// [`Settings`] in words, as logs and `migrate up` show them: `bucket width 1h, 4 shards, 16
/// latest shards, retention 7days, compaction window 6h`.
#[derive(Debug, Clone, Copy)]
pub struct Described<'a>(pub &'a Settings);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let duration =
            |seconds: u32| humantime::format_duration(Duration::from_secs(seconds.into()));
        write!(
            f,
            "bucket width {}, {} shards, {} latest shards, retention {}, compaction window {}",
            duration(s.bucket_width.seconds()),
            s.shards.get(),
            s.latest_shards.get(),
            duration(s.ttl_seconds),
            duration(s.compaction_window_seconds)
        )
    }
}

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
    /// `--rollup-minute-retention`, seconds.
    pub rollup_minute_ttl_seconds: Option<u32>,
    /// `--rollup-hour-retention`, seconds.
    pub rollup_hour_ttl_seconds: Option<u32>,
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
            rollups: RollupRetention {
                minute_ttl_seconds: self
                    .rollup_minute_ttl_seconds
                    .unwrap_or(base.rollups.minute_ttl_seconds),
                hour_ttl_seconds: self
                    .rollup_hour_ttl_seconds
                    .unwrap_or(base.rollups.hour_ttl_seconds),
            },
        };
        settings.validate().map_err(MigrateError::InvalidSettings)?;
        Ok(settings)
    }

    /// Checks that every requested value equals the recorded one. Values are matched by the
    /// names of [`Settings::to_pairs`] (the names stored in `timebucket_settings`), never by
    /// position, so adding or reordering a setting cannot compare two different settings.
    pub fn check_against(&self, recorded: &Settings) -> Result<(), MigrateError> {
        let recorded = recorded.to_pairs();
        for (name, requested) in self.to_pairs() {
            let Some(requested) = requested else {
                continue;
            };
            let recorded = recorded
                .iter()
                .find(|(recorded_name, _)| *recorded_name == name)
                .map(|&(_, value)| value)
                .ok_or_else(|| {
                    MigrateError::InvalidSettings(format!("setting {name} is not a stored setting"))
                })?;
            if requested != recorded {
                return Err(MigrateError::SettingsConflict {
                    name,
                    recorded,
                    requested,
                });
            }
        }
        Ok(())
    }

    /// The requested values under the names [`Settings::to_pairs`] stores them by.
    fn to_pairs(self) -> [(&'static str, Option<i64>); 7] {
        [
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
            (
                "rollup_minute_ttl_seconds",
                self.rollup_minute_ttl_seconds.map(i64::from),
            ),
            (
                "rollup_hour_ttl_seconds",
                self.rollup_hour_ttl_seconds.map(i64::from),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_described_in_words() {
        assert_eq!(
            Described(&Settings::default()).to_string(),
            "bucket width 1h, 4 shards, 16 latest shards, retention 7days, compaction window 6h"
        );
    }

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

    #[test]
    fn each_setting_is_compared_with_the_recorded_setting_of_the_same_name() {
        let recorded = Settings {
            compaction_window_seconds: 3 * 3600,
            ..Settings::default()
        };
        let every = SettingsRequest {
            bucket_width_seconds: Some(recorded.bucket_width.seconds()),
            shards: Some(recorded.shards.get()),
            latest_shards: Some(recorded.latest_shards.get()),
            ttl_seconds: Some(recorded.ttl_seconds),
            compaction_window_seconds: Some(recorded.compaction_window_seconds),
            rollup_minute_ttl_seconds: Some(recorded.rollups.minute_ttl_seconds),
            rollup_hour_ttl_seconds: Some(recorded.rollups.hour_ttl_seconds),
        };
        every.check_against(&recorded).unwrap();
        let off_by_one: [(&str, SettingsRequest); 7] = [
            (
                "bucket_width_seconds",
                SettingsRequest {
                    bucket_width_seconds: Some(recorded.bucket_width.seconds() + 1),
                    ..every
                },
            ),
            (
                "shard_count",
                SettingsRequest {
                    shards: Some(recorded.shards.get() + 1),
                    ..every
                },
            ),
            (
                "latest_shard_count",
                SettingsRequest {
                    latest_shards: Some(recorded.latest_shards.get() + 1),
                    ..every
                },
            ),
            (
                "ttl_seconds",
                SettingsRequest {
                    ttl_seconds: Some(recorded.ttl_seconds + 1),
                    ..every
                },
            ),
            (
                "compaction_window_seconds",
                SettingsRequest {
                    compaction_window_seconds: Some(recorded.compaction_window_seconds + 1),
                    ..every
                },
            ),
            (
                "rollup_minute_ttl_seconds",
                SettingsRequest {
                    rollup_minute_ttl_seconds: Some(recorded.rollups.minute_ttl_seconds + 1),
                    ..every
                },
            ),
            (
                "rollup_hour_ttl_seconds",
                SettingsRequest {
                    rollup_hour_ttl_seconds: Some(recorded.rollups.hour_ttl_seconds + 1),
                    ..every
                },
            ),
        ];
        for (expected, request) in off_by_one {
            match request.check_against(&recorded) {
                Err(MigrateError::SettingsConflict { name, .. }) => assert_eq!(name, expected),
                other => panic!("{expected}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_requestable_setting_is_a_stored_setting() {
        let mut requested: Vec<&str> = SettingsRequest::default()
            .to_pairs()
            .iter()
            .map(|(name, _)| *name)
            .collect();
        let mut stored: Vec<&str> = Settings::default()
            .to_pairs()
            .iter()
            .map(|(name, _)| *name)
            .collect();
        requested.sort_unstable();
        stored.sort_unstable();
        assert_eq!(requested, stored);
    }
}
