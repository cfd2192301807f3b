//! Where an archived bucket lives: `<dir>/<kind>/service=<S>/bucket=<epoch seconds>/part.parquet`.
//!
//! Hive-style `key=value` directories, so engines (DuckDB's `hive_partitioning`, pyarrow's
//! datasets, Spark, Trino) prune by service and bucket from the path alone and add both as
//! columns. The service is percent-encoded as Hive and those readers decode it (every byte but
//! ASCII letters, digits and `-_.~`): a service name may hold `/`, `=` or `%`, and no name can
//! then climb out of its directory. The bucket is its start in epoch seconds, a number every
//! engine types as an integer (an RFC 3339 time would need its colons encoded).
//!
//! A file is written as `.part.parquet.tmp` next to its final name and renamed once complete and
//! synced, so a reader (or a glob such as `*/*/*/*.parquet`) never sees half a file.

use std::path::{Path, PathBuf};

use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::model::kind::KindInfo;
use crate::model::{ServiceName, TimeBucket};

/// The name of every data file.
pub const PART: &str = "part.parquet";
/// The name a data file is written under until complete.
pub const PART_TMP: &str = ".part.parquet.tmp";
/// The manifest at the archive's root.
pub const MANIFEST: &str = "manifest.json";

/// Bytes of a service name left as they are: the RFC 3986 unreserved characters.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The directory of one archived bucket, relative to the archive's root, with `/` separators
/// (as the manifest records it).
pub fn bucket_dir(kind: &KindInfo, service: &ServiceName, bucket: TimeBucket) -> String {
    let service = percent_encode(service.as_str().as_bytes(), KEEP);
    format!(
        "{}/service={service}/bucket={}",
        kind.name,
        bucket.epoch_seconds()
    )
}

/// The data file of one archived bucket, relative to the archive's root.
pub fn part_path(kind: &KindInfo, service: &ServiceName, bucket: TimeBucket) -> String {
    format!("{}/{PART}", bucket_dir(kind, service, bucket))
}

/// `relative` (a manifest path) under `root`.
pub fn resolve(root: &Path, relative: &str) -> PathBuf {
    relative
        .split('/')
        .fold(root.to_path_buf(), |p, s| p.join(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ApiReading, ReadingKind};

    #[test]
    fn paths_are_hive_style_and_a_service_cannot_leave_its_directory() {
        let bucket = TimeBucket::from_epoch_seconds(1_764_489_600);
        let plain = ServiceName::parse("checkout-v2").unwrap();
        assert_eq!(
            part_path(ApiReading::INFO, &plain, bucket),
            "api/service=checkout-v2/bucket=1764489600/part.parquet"
        );
        let sneaky = ServiceName::parse("../a/b=c%d é").unwrap();
        assert_eq!(
            bucket_dir(ApiReading::INFO, &sneaky, bucket),
            "api/service=..%2Fa%2Fb%3Dc%25d%20%C3%A9/bucket=1764489600"
        );
    }
}
