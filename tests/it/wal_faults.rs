//! Running out of file descriptors (EMFILE) must never stop the WAL writer or the flusher:
//! appends fail with a retryable error and the WAL says why until it can write again, and the
//! flusher waits until it can read the WAL again, losing nothing.
//!
//! Each test runs in a child process of its own (`rusty_fork`) that lowers its own descriptor
//! limit and then takes every free descriptor, without disturbing the tests running alongside.

use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusty_fork::rusty_fork_test;
use serde_json::json;
use timebucket::ingest::quarantine::Quarantine;
use timebucket::ingest::{gate, AcceptConfig, Acceptor, BodyFormat, Flusher, FlusherConfig};
use timebucket::store::embedded::EmbeddedStore;
use timebucket::telemetry::Metrics;
use timebucket::wal::{Position, SegmentId, Wal, WalConfig};

/// The descriptor limit of the child processes: low, so taking every free one is quick.
const FD_LIMIT: u64 = 512;

/// Lowers this process's soft limit on open files to [`FD_LIMIT`].
fn lower_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = FD_LIMIT.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// Opens files until the process has no free descriptor left; dropping them frees them.
fn take_every_descriptor() -> Vec<File> {
    let mut taken = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(file) => taken.push(file),
            Err(err) if err.raw_os_error() == Some(libc::EMFILE) => return taken,
            Err(err) => panic!("unexpected error while taking descriptors: {err}"),
        }
    }
}

/// Polls `done` every 20 ms until it holds; panics with `what` after a minute.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: still not true after a minute"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

rusty_fork_test! {
    #![rusty_fork(timeout_ms = 120_000)]

    #[test]
    fn a_segment_that_cannot_be_opened_fails_appends_retryably_until_a_descriptor_frees() {
        lower_fd_limit();
        let dir = tempfile::tempdir().unwrap();
        let config = WalConfig {
            segment_bytes: 1024,
            max_record_bytes: 1000,
            ..WalConfig::new(dir.path())
        };
        let runtime = runtime();
        let wal = Wal::open(config).unwrap();
        // Nine 100-byte records fill segment 1; the tenth needs segment 2 created.
        for i in 0..9 {
            runtime.block_on(wal.append(vec![i; 100])).unwrap();
        }
        let taken = take_every_descriptor();
        let err = runtime.block_on(wal.append(vec![9; 100])).unwrap_err();
        assert!(err.is_retryable(), "{err}");
        let problem = wal.append_problem().expect("the WAL says why appends fail");
        assert!(problem.contains("Too many open files"), "{problem}");
        assert!(!problem.contains(&*dir.path().to_string_lossy()), "no paths: {problem}");

        // Without any append, the writer finds out on its own that it can write again.
        drop(taken);
        wait_until("the WAL reports itself writable", || wal.append_problem().is_none());
        let position = runtime.block_on(wal.append(vec![9; 100])).unwrap();
        assert_eq!(position, Position::start_of(SegmentId(2)));
    }

    #[test]
    fn the_flusher_waits_out_a_lack_of_file_descriptors_and_loses_nothing() {
        lower_fd_limit();
        let dir = tempfile::tempdir().unwrap();
        let runtime = runtime();
        let wal = Wal::open(WalConfig {
            // A record of ten readings takes a few hundred bytes: several per segment.
            segment_bytes: 1024,
            max_record_bytes: 1000,
            ..WalConfig::new(dir.path().join("wal"))
        })
        .unwrap();
        let store = Arc::new(EmbeddedStore::open(&dir.path().join("store")).unwrap());
        let metrics = Arc::new(Metrics::new());
        let acceptor = Acceptor::new(
            wal.clone(),
            AcceptConfig {
                limits: timebucket::ingest::AcceptLimits {
                    max_concurrent: 1,
                    ..Default::default()
                },
                retention_ms: 24 * 3600 * 1000,
            },
            metrics.clone(),
        );
        let t = chrono::Utc::now().timestamp_millis();
        let mut accepted = 0;
        for batch in 0..10 {
            let readings: Vec<_> = (0..10)
                .map(|i| json!({"service": "fd", "instance": "i", "method": "GET",
                    "path": format!("/b{batch}/r{i}"), "code": 200, "duration_ms": 1, "timestamp": t}))
                .collect();
            let body = serde_json::to_vec(&json!({ "api": readings })).unwrap();
            accepted += runtime
                .block_on(async {
                    let slot = acceptor.admit().await.unwrap();
                    acceptor
                        .accept(slot, body.into(), false, BodyFormat::Json, gate::open())
                        .await
                })
                .unwrap();
        }
        assert!(wal.stats().segments_on_disk > 1, "the records span several segments");

        // The flusher starts with no descriptor free: it cannot open the first segment.
        let taken = take_every_descriptor();
        let (flusher, handle) = Flusher::new(
            wal.clone(),
            store,
            metrics.clone(),
            FlusherConfig {
                retry_initial: Duration::from_millis(10),
                retry_max: Duration::from_millis(100),
                ..FlusherConfig::default()
            },
            Quarantine::in_data_dir(dir.path()),
            tokio::sync::watch::channel(true).0,
        );
        let flushing = runtime.spawn(flusher.run());
        wait_until("the flusher retries reading the WAL", || {
            assert!(!flushing.is_finished(), "the flusher stopped on EMFILE");
            metrics.wal_retries.get() > 0
        });
        drop(taken);
        wait_until("every reading is flushed and confirmed", || {
            metrics.readings_flushed.get() == accepted as u64 && wal.stats().backlog_bytes == 0
        });
        handle.drain();
        runtime.block_on(flushing).unwrap().unwrap();
    }
}
