//! The two fan-out reads the query and backends benches time over a whole range: the ordered
//! merge behind `/v1/readings` and the `/v1/stats` request.

use std::sync::Arc;

use timebucket::model::{ApiReading, ServiceName};
use timebucket::query::answer::StatsAnswer;
use timebucket::query::fanout::{OrderedMerge, Reads};
use timebucket::query::params::{ApiFilter, Step, TimeRange};
use timebucket::query::plan::{plan, RangeRead};
use timebucket::query::requests::{GroupBy, StatsRequest};
pub use timebucket::query::source::Source;
use timebucket::query::QueryLimits;
use timebucket::store::{Order, Store};

/// The merge of every API reading of `service` in `range`, oldest first.
pub fn ordered_merge<S: Store>(
    store: &Arc<S>,
    limits: &QueryLimits,
    service: &ServiceName,
    range: TimeRange,
) -> OrderedMerge<S, ApiReading> {
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

/// Stats of every API reading of `service` in `range`: one-minute steps, no grouping or
/// filter, from `source` (the data of these benchmarks is written without rollups: `Raw`).
pub fn stats_request(
    service: &ServiceName,
    range: TimeRange,
    source: Source,
) -> anyhow::Result<StatsRequest> {
    Ok(StatsRequest {
        service: service.clone(),
        range,
        step: Step::parse("1m").map_err(anyhow::Error::msg)?,
        group_by: GroupBy::default(),
        filter: ApiFilter::default(),
        source,
    })
}

/// Rounds per range from `ITERATIONS` text: three numbers for 1 h, 6 h and 24 h.
pub fn rounds_per_range(text: &str) -> anyhow::Result<Vec<usize>> {
    let rounds: Vec<usize> = text
        .split(',')
        .map(|n| n.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("ITERATIONS={text}: three numbers, e.g. 40,20,10"))?;
    if rounds.len() != 3 {
        anyhow::bail!("ITERATIONS needs three numbers (1 h, 6 h, 24 h), got {text}");
    }
    Ok(rounds)
}

/// The requests a stats answer counted (summing `count`), to check it against the seed.
pub fn requests_counted(answer: &StatsAnswer) -> u64 {
    answer
        .groups
        .iter()
        .flat_map(|g| &g.points)
        .map(|p| p.count)
        .sum()
}
