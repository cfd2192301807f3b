//! The fan-out's ordered merge over every partition of a range, as `/v1/readings` runs it when
//! reading everything (one page read ahead per partition). Shared by the query and backends
//! benches (`#[path]`: not a module of `support`, which the ingest bench also compiles).

use std::sync::Arc;

use timebucket::model::ServiceName;
use timebucket::query::fanout::{ApiRows, OrderedMerge, Reads};
use timebucket::query::params::TimeRange;
use timebucket::query::plan::{plan, RangeRead};
use timebucket::query::QueryLimits;
use timebucket::store::{Order, Store};

/// The merge of every API reading of `service` in `range`, oldest first.
pub fn ordered_merge<S: Store>(
    store: &Arc<S>,
    limits: &QueryLimits,
    service: &ServiceName,
    range: TimeRange,
) -> OrderedMerge<S, ApiRows> {
    let read = RangeRead {
        service,
        range,
        order: Order::Asc,
        resume: None,
        shard: None,
        page_rows: limits.page_rows,
    };
    let reads = Reads::new(store.clone(), limits.concurrency);
    let buckets = plan(&read, store.settings());
    OrderedMerge::new(reads, buckets, Order::Asc, true)
}
