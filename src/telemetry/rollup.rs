//! The rollup metrics: how many pieces the flusher ends and how many partial rows they write
//! (the write amplification of rollups), and whether the compactor runs and what it merges, so
//! an operator (and the scale benchmark) can see that the partials of closed slots are being
//! merged.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::OneLabel;

/// The rollup metrics.
#[derive(Default)]
pub struct RollupMetrics {
    /// WAL pieces the flusher ended (each writes its partial rows and latest rows).
    pub pieces: Counter,
    /// Partial rollup rows the flusher wrote (minute and hour).
    pub partial_rows: Counter,
    /// Compactor runs by outcome (`ok`, `failed`).
    pub compactions: Family<OneLabel, Counter>,
    /// Compacted rows written (one per series, slot and level merged).
    pub compacted_rows: Counter,
    /// Rows the compacted rows replaced, deleted.
    pub deleted_rows: Counter,
}

impl RollupMetrics {
    /// Registers every metric in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "rollup_pieces",
            "WAL pieces the flusher ended, each writing its partial rollup rows and latest rows",
            self.pieces.clone(),
        );
        registry.register(
            "rollup_partial_rows",
            "Partial rollup rows (minute and hour) the flusher wrote",
            self.partial_rows.clone(),
        );
        registry.register(
            "rollup_compactions",
            "Rollup compactor runs by outcome",
            self.compactions.clone(),
        );
        registry.register(
            "rollup_compacted_rows",
            "Compacted rollup rows written",
            self.compacted_rows.clone(),
        );
        registry.register(
            "rollup_deleted_rows",
            "Rollup partials (and older compacted rows) deleted by compaction",
            self.deleted_rows.clone(),
        );
    }

    /// Records one run.
    pub fn record(&self, outcome: &'static str, written: usize, deleted: usize) {
        self.compactions
            .get_or_create(&[("outcome", outcome)])
            .inc();
        self.compacted_rows.inc_by(written as u64);
        self.deleted_rows.inc_by(deleted as u64);
    }
}
