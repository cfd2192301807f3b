//! The WAL's error type.
//!
//! One variant per cause, each carrying what an operator needs to act (path, segment, offset,
//! reason), with a Display message that says how to recover. Two classes decide behaviour:
//! [`WalError::is_corruption`] is exactly what `--wal-repair` resolves, and
//! [`WalError::is_retryable`] is what may succeed later on its own (a full disk, no free file
//! descriptor): callers retry those or answer "try again later", and never stop the process
//! for them. Every other error is either the caller's (too large, empty, bad position) or needs
//! a restart (a failed fsync).

use std::io;
use std::path::{Path, PathBuf};

use super::types::{Position, SegmentId};

/// Everything that can go wrong in the WAL.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file-system operation failed.
    #[error("WAL I/O error on {}: {source}", .path.display())]
    Io {
        /// The file or directory being worked on.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },

    /// A segment holds bytes that no crash can explain.
    #[error(
        "WAL segment {segment} is corrupt at offset {offset}: {reason}; restart with \
         --wal-repair to drop the damaged record (or the rest of this segment when record \
         boundaries are lost) and keep the rest of the log"
    )]
    Corrupt {
        /// The damaged segment.
        segment: SegmentId,
        /// Where the first bad record (or the bad header, at 0) starts.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },

    /// Segment numbering has a hole, so records in between are gone.
    #[error(
        "WAL segment {expected} is missing (next present: segment {found}); restart with \
         --wal-repair to accept the loss of its records (later segments are kept)"
    )]
    MissingSegment {
        /// The segment that should exist.
        expected: SegmentId,
        /// The next segment that does exist.
        found: SegmentId,
    },

    /// The newest segments are gone: the checkpoint records that segment `newest` was created
    /// (its creation is recorded before any record goes into it), yet the log ends earlier.
    #[error(
        "WAL segments {first} to {newest} are missing from the end of the log: the checkpoint \
         records that segment {newest} was created, so acknowledged records may be lost; \
         restart with --wal-repair to accept the loss"
    )]
    MissingNewest {
        /// The first missing segment.
        first: SegmentId,
        /// The newest segment ever created, as recorded.
        newest: SegmentId,
    },

    /// The `confirmed` checkpoint cannot be used.
    #[error(
        "WAL checkpoint {} is invalid: {reason}; restart with --wal-repair to replay from the \
         nearest safe point (some records reach the store twice)",
        .path.display()
    )]
    BadCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The payload is larger than `max_record_bytes` (HTTP 413).
    #[error("record of {len} bytes exceeds the WAL limit of {max} bytes; send smaller batches")]
    RecordTooLarge {
        /// Size of the refused payload.
        len: usize,
        /// The configured limit.
        max: u32,
    },

    /// Empty payloads are refused: they carry nothing and a zero length marks damage on disk.
    #[error("an empty record cannot be appended to the WAL")]
    EmptyRecord,

    /// The configuration cannot work.
    #[error("invalid WAL configuration: {reason}")]
    InvalidConfig {
        /// Which setting is wrong and why.
        reason: String,
    },

    /// `confirm` was given a position the log has not durably reached.
    #[error("cannot confirm {upto}: the durable end of the WAL is {durable_end}")]
    ConfirmPastEnd {
        /// The requested position.
        upto: Position,
        /// The durable end at the time of the call.
        durable_end: Position,
    },

    /// The writer hit an error after which the file state is unknown (a failed fsync);
    /// it refuses further appends rather than risk acknowledging lost data.
    #[error(
        "WAL writer stopped after an unrecoverable error ({reason}); restart the service so \
         the log is validated and its tail truncated"
    )]
    WriterFailed {
        /// The original failure.
        reason: String,
    },

    /// The WAL was closed; no more appends are taken.
    #[error("the WAL is closed")]
    Closed,
}

impl WalError {
    /// True for damage on disk that `--wal-repair` resolves (at the cost of records).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            WalError::Corrupt { .. }
                | WalError::MissingSegment { .. }
                | WalError::MissingNewest { .. }
                | WalError::BadCheckpoint { .. }
        )
    }

    /// True when the same operation may succeed later without a restart or a repair, because
    /// the machine ran short of something that frees up (disk space, quota, file descriptors,
    /// memory) or was interrupted. The flusher retries these with backoff and ingest answers
    /// 503; neither stops the process.
    ///
    /// EIO counts too: on an open or a read it is often a passing device or network-filesystem
    /// fault, and retrying a read or a write that was truncated back is harmless. The one EIO
    /// that is not harmless, a failed `sync_data` of appended records, never reaches callers
    /// as `Io`: the writer turns it into [`WalError::WriterFailed`], which needs a restart.
    pub fn is_retryable(&self) -> bool {
        match self {
            WalError::Io { source, .. } => is_transient(source),
            _ => false,
        }
    }

    /// The cause without the file path, for answers sent to clients and probes (paths are
    /// for the log only).
    pub fn cause(&self) -> String {
        match self {
            WalError::Io { source, .. } => source.to_string(),
            other => other.to_string(),
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub(super) fn io(path: impl AsRef<Path>, source: io::Error) -> WalError {
        WalError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A copy of this error, for answering every waiter of a failed group with the same
    /// cause (`io::Error` is not `Clone`, so its kind, OS code and message are copied).
    pub(super) fn duplicate(&self) -> WalError {
        match self {
            WalError::Io { path, source } => WalError::Io {
                path: path.clone(),
                source: match source.raw_os_error() {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => io::Error::new(source.kind(), source.to_string()),
                },
            },
            WalError::Corrupt {
                segment,
                offset,
                reason,
            } => WalError::Corrupt {
                segment: *segment,
                offset: *offset,
                reason: reason.clone(),
            },
            WalError::MissingSegment { expected, found } => WalError::MissingSegment {
                expected: *expected,
                found: *found,
            },
            WalError::MissingNewest { first, newest } => WalError::MissingNewest {
                first: *first,
                newest: *newest,
            },
            WalError::BadCheckpoint { path, reason } => WalError::BadCheckpoint {
                path: path.clone(),
                reason: reason.clone(),
            },
            WalError::RecordTooLarge { len, max } => WalError::RecordTooLarge {
                len: *len,
                max: *max,
            },
            WalError::EmptyRecord => WalError::EmptyRecord,
            WalError::InvalidConfig { reason } => WalError::InvalidConfig {
                reason: reason.clone(),
            },
            WalError::ConfirmPastEnd { upto, durable_end } => WalError::ConfirmPastEnd {
                upto: *upto,
                durable_end: *durable_end,
            },
            WalError::WriterFailed { reason } => WalError::WriterFailed {
                reason: reason.clone(),
            },
            WalError::Closed => WalError::Closed,
        }
    }
}

/// OS errors that mean "not now" rather than "never": see [`WalError::is_retryable`].
fn is_transient(error: &io::Error) -> bool {
    let transient_kind = matches!(
        error.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    );
    transient_kind
        || matches!(
            error.raw_os_error(),
            Some(
                libc::ENOSPC
                    | libc::EDQUOT
                    | libc::EMFILE
                    | libc::ENFILE
                    | libc::ENOMEM
                    | libc::ENOBUFS
                    | libc::EIO
                    | libc::EBUSY
            )
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corruption_messages_name_the_place_and_the_way_out() {
        let err = WalError::Corrupt {
            segment: SegmentId(3),
            offset: 124,
            reason: "checksum mismatch".to_owned(),
        };
        let text = err.to_string();
        assert!(
            text.contains("segment 3") && text.contains("offset 124"),
            "{text}"
        );
        assert!(text.contains("--wal-repair"), "{text}");
        assert!(err.is_corruption());
        assert!(!WalError::Closed.is_corruption());
    }

    #[test]
    fn duplicated_io_errors_keep_path_and_os_code() {
        let err = WalError::io("/wal/x.seg", io::Error::from_raw_os_error(28));
        let WalError::Io { path, source } = err.duplicate() else {
            panic!("duplicate changed the variant");
        };
        assert_eq!(path, Path::new("/wal/x.seg"));
        assert_eq!(source.raw_os_error(), Some(28));
    }

    #[test]
    fn resource_shortages_are_retryable_and_damage_is_not() {
        let io = |code| WalError::io("/wal/x.seg", io::Error::from_raw_os_error(code));
        for code in [
            libc::ENOSPC,
            libc::EDQUOT,
            libc::EMFILE,
            libc::ENFILE,
            libc::EINTR,
            libc::EAGAIN,
            libc::EIO,
        ] {
            assert!(io(code).is_retryable(), "errno {code}");
            assert!(
                io(code).duplicate().is_retryable(),
                "duplicated errno {code}"
            );
        }
        for code in [libc::ENOENT, libc::EACCES, libc::EROFS, libc::EISDIR] {
            assert!(!io(code).is_retryable(), "errno {code}");
        }
        let failed = WalError::WriterFailed {
            reason: "sync_data failed".to_owned(),
        };
        assert!(!failed.is_retryable());
        assert!(!WalError::Closed.is_retryable());
        let corrupt = WalError::Corrupt {
            segment: SegmentId(1),
            offset: 16,
            reason: "checksum mismatch".to_owned(),
        };
        assert!(!corrupt.is_retryable());
        assert!(!io(libc::ENOSPC).cause().contains("/wal"));
    }
}
