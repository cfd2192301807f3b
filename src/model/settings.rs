//! Deployment settings chosen once, at `migrate` time, and read back by every service.
//!
//! Reader and writer must agree on the bucket width and shard count, or queries would look in
//! partitions nobody wrote. So these live in the database (`timebucket_settings`), are written
//! once, and are never taken from a service's own flags.

use std::time::Duration;

use super::bucket::{BucketWidth, ShardCount};

/// Most TTL / window ratios Scylla accepts for TWCS by default.
pub const MAX_WINDOWS_PER_TTL: u64 = 50;
/// The TWCS / retention windows of the minute and hour rollups, seconds
/// (`rollup::Resolution::window_seconds`).
pub const ROLLUP_WINDOW_SECONDS: [(&str, u64); 2] = [("minute", 86_400), ("hour", 864_000)];

/// The validated deployment settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Width of a partition's time bucket.
    pub bucket_width: BucketWidth,
    /// Shards (`seq` values) per service bucket.
    pub shards: ShardCount,
    /// Shards of the latest-readings tables (their partition key).
    pub latest_shards: ShardCount,
    /// Retention: table-wide default TTL of the time-bucketed tables, seconds.
    pub ttl_seconds: u32,
    /// TWCS compaction window, seconds: a whole multiple of the bucket width.
    pub compaction_window_seconds: u32,
    /// How long each level of rollups is kept (see `crate::rollup`).
    pub rollups: RollupRetention,
}

/// Retention of the rollups, longer than the raw readings'. Stores created before rollups
/// existed have none recorded and use the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollupRetention {
    /// Per-minute rollups, seconds (default 35 days).
    pub minute_ttl_seconds: u32,
    /// Per-hour rollups, seconds (default 400 days).
    pub hour_ttl_seconds: u32,
}

impl Default for RollupRetention {
    fn default() -> Self {
        Self {
            minute_ttl_seconds: 35 * 24 * 3600,
            hour_ttl_seconds: 400 * 24 * 3600,
        }
    }
}

impl Default for Settings {
    /// One-hour buckets (an "last hour" query touches two), four shards, sixteen latest shards,
    /// seven days of retention in six-hour windows: 28 windows per TTL.
    fn default() -> Self {
        Self {
            bucket_width: BucketWidth::from_seconds(3600).expect("non-zero"),
            shards: ShardCount::new(4).expect("in range"),
            latest_shards: ShardCount::new(16).expect("in range"),
            ttl_seconds: 7 * 24 * 3600,
            compaction_window_seconds: 6 * 3600,
            rollups: RollupRetention::default(),
        }
    }
}

impl Settings {
    /// Checks the relations between the values: the window is a whole number of buckets and
    /// hours, and the TTL spans between one and [`MAX_WINDOWS_PER_TTL`] windows.
    pub fn validate(&self) -> Result<(), String> {
        let bucket = self.bucket_width.seconds();
        let window = self.compaction_window_seconds;
        if window == 0 || !window.is_multiple_of(bucket) {
            return Err(format!(
                "compaction window ({window}s) must be a whole multiple of the bucket width ({bucket}s)"
            ));
        }
        if !window.is_multiple_of(3600) {
            return Err(format!(
                "compaction window ({window}s) must be a whole number of hours"
            ));
        }
        let windows = u64::from(self.ttl_seconds) / u64::from(window);
        if self.ttl_seconds < window || windows > MAX_WINDOWS_PER_TTL {
            return Err(format!(
                "TTL ({}s) must span 1 to {MAX_WINDOWS_PER_TTL} compaction windows of {window}s, got {windows}",
                self.ttl_seconds
            ));
        }
        let rollups = [
            self.rollups.minute_ttl_seconds,
            self.rollups.hour_ttl_seconds,
        ];
        for ((level, window), ttl) in ROLLUP_WINDOW_SECONDS.into_iter().zip(rollups) {
            if ttl == 0 || u64::from(ttl) > window * MAX_WINDOWS_PER_TTL {
                return Err(format!(
                    "{level} rollup retention ({ttl}s) must be more than 0 and at most \
                     {MAX_WINDOWS_PER_TTL} windows of {window}s"
                ));
            }
        }
        Ok(())
    }

    /// The retention as a duration.
    pub fn retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.ttl_seconds))
    }

    /// The compaction window in whole hours (TWCS `compaction_window_size` with unit HOURS).
    pub fn compaction_window_hours(&self) -> u32 {
        self.compaction_window_seconds / 3600
    }

    /// The settings as `(name, value)` pairs, as stored in `timebucket_settings`.
    pub fn to_pairs(&self) -> [(&'static str, i64); 7] {
        [
            (
                "bucket_width_seconds",
                i64::from(self.bucket_width.seconds()),
            ),
            ("shard_count", i64::from(self.shards.get())),
            ("latest_shard_count", i64::from(self.latest_shards.get())),
            ("ttl_seconds", i64::from(self.ttl_seconds)),
            (
                "compaction_window_seconds",
                i64::from(self.compaction_window_seconds),
            ),
            (
                "rollup_minute_ttl_seconds",
                i64::from(self.rollups.minute_ttl_seconds),
            ),
            (
                "rollup_hour_ttl_seconds",
                i64::from(self.rollups.hour_ttl_seconds),
            ),
        ]
    }

    /// Rebuilds settings from stored pairs; every name must be present and valid, except the
    /// rollup retentions, which take their defaults in stores recorded before rollups.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, i64)>) -> Result<Self, String> {
        let map: std::collections::HashMap<&str, i64> = pairs.into_iter().collect();
        let get = |name: &str| -> Result<i64, String> {
            map.get(name)
                .copied()
                .ok_or_else(|| format!("setting `{name}` is missing from timebucket_settings"))
        };
        let small = |name: &str| -> Result<u32, String> {
            u32::try_from(get(name)?).map_err(|_| format!("setting `{name}` is out of range"))
        };
        let shards = |name: &str| -> Result<ShardCount, String> {
            let value = u16::try_from(get(name)?)
                .map_err(|_| format!("setting `{name}` is out of range"))?;
            ShardCount::new(value)
        };
        let settings = Self {
            bucket_width: BucketWidth::from_seconds(small("bucket_width_seconds")?)?,
            shards: shards("shard_count")?,
            latest_shards: shards("latest_shard_count")?,
            ttl_seconds: small("ttl_seconds")?,
            compaction_window_seconds: small("compaction_window_seconds")?,
            rollups: RollupRetention {
                minute_ttl_seconds: match map.contains_key("rollup_minute_ttl_seconds") {
                    true => small("rollup_minute_ttl_seconds")?,
                    false => RollupRetention::default().minute_ttl_seconds,
                },
                hour_ttl_seconds: match map.contains_key("rollup_hour_ttl_seconds") {
                    true => small("rollup_hour_ttl_seconds")?,
                    false => RollupRetention::default().hour_ttl_seconds,
                },
            },
        };
        settings.validate()?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let settings = Settings::default();
        settings.validate().unwrap();
        assert_eq!(Settings::from_pairs(settings.to_pairs()).unwrap(), settings);
    }

    #[test]
    fn stores_recorded_before_rollups_get_the_default_rollup_retention() {
        let settings = Settings::default();
        let old: Vec<(&str, i64)> = settings.to_pairs()[..5].to_vec();
        let read = Settings::from_pairs(old).unwrap();
        assert_eq!(read.rollups, RollupRetention::default());
        assert_eq!(read.rollups.minute_ttl_seconds, 35 * 24 * 3600);
    }

    #[test]
    fn rollup_retentions_are_bounded_by_their_windows() {
        let mut settings = Settings::default();
        settings.rollups.minute_ttl_seconds = 51 * 86_400;
        assert!(settings.validate().unwrap_err().contains("minute rollup"));
        settings.rollups.minute_ttl_seconds = 60;
        settings.validate().unwrap();
        settings.rollups.hour_ttl_seconds = 0;
        assert!(settings.validate().unwrap_err().contains("hour rollup"));
    }

    #[test]
    fn window_must_align_with_the_bucket() {
        let settings = Settings {
            compaction_window_seconds: 5400,
            ..Settings::default()
        };
        assert!(settings.validate().is_err());
    }

    #[test]
    fn too_many_windows_per_ttl_are_refused() {
        let settings = Settings {
            ttl_seconds: 60 * 24 * 3600,
            compaction_window_seconds: 3600,
            ..Settings::default()
        };
        assert!(settings
            .validate()
            .unwrap_err()
            .contains("compaction windows"));
    }
}
