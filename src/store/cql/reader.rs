//! [`CqlStore`]'s read path: one partition per request, prepared statements only, one generic
//! path for every kind.
//!
//! Every read is paged. A range page is a keyset slice capped by `LIMIT`; the driver may still
//! cut it short (Scylla ends pages early at 1 MB or on tombstones), so each read follows the
//! driver's paging state until it has `limit` rows or the result ends — a short answer therefore
//! really is the partition's last page. The latest-readings and series partitions are small
//! and read whole, page by page; one past [`MAX_WHOLE_PARTITION_ROWS`] is an error
//! ([`StoreError::TooManyRows`]), never a silently cut answer.
//!
//! Rows are turned back into the validated model types through the kind's own checks
//! ([`super::row::decode`]); a row that fails them (written by hand in cqlsh, say) is a
//! [`StoreError::Decode`], never a panic.

use scylla::deserialize::row::ColumnIterator;
use scylla::response::query_result::QueryRowsResult;
use scylla::response::{PagingState, PagingStateResponse};
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use scylla::DeserializeRow;

use super::row::decode;
use super::CqlStore;
use crate::model::{
    ApiPath, HttpMethod, InstanceName, ReadingKind, Seq, ServiceName, TimeBucket, TimestampMs,
};
use crate::store::Store;
use crate::store::{expired, Order, PageRequest, SeriesEntry, StoreError};

/// Most rows a whole-partition read (series, latest) returns: far above any real partition,
/// a guard against a runaway answer.
pub(super) const MAX_WHOLE_PARTITION_ROWS: usize = 1_000_000;

/// The rows of a whole-partition read that asked for one more than `limit`: all of them, or
/// an error when the partition held more than `limit`.
pub(super) fn whole<T>(
    rows: Vec<T>,
    limit: usize,
    what: &'static str,
) -> Result<Vec<T>, StoreError> {
    if rows.len() > limit {
        return Err(StoreError::TooManyRows { what, limit });
    }
    Ok(rows)
}

/// A series index row.
#[derive(DeserializeRow)]
struct SeriesRow<'a> {
    instance: &'a str,
    method: &'a str,
    path: &'a str,
}

pub(super) fn check<T>(
    what: &'static str,
    field: &str,
    parsed: Result<T, String>,
) -> Result<T, StoreError> {
    parsed.map_err(|reason| StoreError::decode(what, format!("column {field}: {reason}")))
}

/// The rows of one page decoded as `R`; a row that does not fit is a decode error of `what`.
pub(super) fn typed_rows<'f, R: scylla::deserialize::row::DeserializeRow<'f, 'f> + 'f>(
    rows: &'f QueryRowsResult,
    what: &'static str,
) -> Result<impl Iterator<Item = Result<R, StoreError>> + 'f, StoreError> {
    Ok(rows
        .rows::<R>()
        .map_err(|e| StoreError::decode(what, e))?
        .map(move |row| row.map_err(|e| StoreError::decode(what, e))))
}

/// A series' names as the series index and the rollup tables store them: host-only series
/// have an empty method and path.
pub(super) fn stored_names(
    what: &'static str,
    instance: &str,
    method: &str,
    path: &str,
) -> Result<(InstanceName, Option<HttpMethod>, Option<ApiPath>), StoreError> {
    let api = !method.is_empty();
    Ok((
        check(what, "instance", InstanceName::parse(instance))?,
        api.then(|| check(what, "method", HttpMethod::parse(method)))
            .transpose()?,
        api.then(|| check(what, "path", ApiPath::parse(path)))
            .transpose()?,
    ))
}

/// The bind values of a range page, in statement order.
fn range_values(
    request: &PageRequest,
) -> (&str, i64, i32, CqlTimestamp, uuid::Uuid, CqlTimestamp, i32) {
    let key = &request.partition;
    (
        key.service.as_str(),
        key.bucket.epoch_seconds(),
        key.seq.get(),
        CqlTimestamp(request.after.timestamp.millis()),
        request.after.id.uuid(),
        CqlTimestamp(request.until.millis()),
        i32::try_from(request.limit).unwrap_or(i32::MAX),
    )
}

/// Decodes every row of `rows` as a reading of kind `K` and appends those `keep` wants.
fn decode_rows<K: ReadingKind>(
    rows: &QueryRowsResult,
    what: &'static str,
    service: Option<&ServiceName>,
    out: &mut Vec<K>,
    keep: impl Fn(&K) -> bool,
) -> Result<(), StoreError> {
    for row in typed_rows::<ColumnIterator>(rows, what)? {
        let reading = decode(what, service, row?)?;
        if keep(&reading) {
            out.push(reading);
        }
    }
    Ok(())
}

impl CqlStore {
    /// Runs `statement` page by page (driver paging state) until the result ends or `limit`
    /// rows were decoded; `decode` turns one page of rows into items.
    pub(super) async fn read_pages<T>(
        &self,
        statement: &PreparedStatement,
        values: &(impl SerializeRow + Sync),
        limit: usize,
        what: &'static str,
        mut decode: impl FnMut(&QueryRowsResult, &mut Vec<T>) -> Result<(), StoreError> + Send,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        let mut paging = PagingState::start();
        loop {
            let (result, response) = self
                .session
                .execute_single_page(statement, values, paging)
                .await
                .map_err(|source| StoreError::execute(what, source))?;
            let rows = result
                .into_rows_result()
                .map_err(|e| StoreError::decode(what, e))?;
            decode(&rows, &mut out)?;
            match response {
                PagingStateResponse::HasMorePages { state } if out.len() < limit => paging = state,
                _ => return Ok(out),
            }
        }
    }

    pub(super) async fn read_partition_page<K: ReadingKind>(
        &self,
        request: &PageRequest,
    ) -> Result<Vec<K>, StoreError> {
        const WHAT: &str = "reading readings";
        let statements = self.statements.of::<K>();
        let statement = match request.order {
            Order::Asc => &statements.select_asc,
            Order::Desc => &statements.select_desc,
        };
        let service = Some(&request.partition.service);
        let limit = request.limit as usize;
        self.read_pages(
            statement,
            &range_values(request),
            limit,
            WHAT,
            |rows, out| decode_rows(rows, WHAT, service, out, |_| true),
        )
        .await
    }

    /// One latest shard whole, of every service or of `service`.
    pub(super) async fn read_latest_shard<K: ReadingKind>(
        &self,
        shard: Seq,
        service: Option<&ServiceName>,
    ) -> Result<Vec<K>, StoreError> {
        const WHAT: &str = "reading latest readings";
        let statements = self.statements.of::<K>();
        // One row more than the cap tells a partition at the cap from one past it.
        let limit = MAX_WHOLE_PARTITION_ROWS + 1;
        // Rows expire by their TTL; rows written before TTLs followed the reading's time may
        // outlive it, so the rule is applied here too, as the embedded store does.
        let (ttl, now) = (self.settings().ttl_seconds, TimestampMs::now());
        let decode = |rows: &QueryRowsResult, out: &mut Vec<K>| {
            decode_rows(rows, WHAT, None, out, |r| !expired(r.timestamp(), ttl, now))
        };
        let rows = match service {
            Some(s) => {
                let values = (shard.get(), s.as_str());
                self.read_pages(&statements.select_latest_of, &values, limit, WHAT, decode)
                    .await?
            }
            None => {
                let values = (shard.get(),);
                self.read_pages(&statements.select_latest, &values, limit, WHAT, decode)
                    .await?
            }
        };
        whole(rows, MAX_WHOLE_PARTITION_ROWS, WHAT)
    }

    pub(super) async fn read_series_partition(
        &self,
        service: &ServiceName,
        bucket: TimeBucket,
    ) -> Result<Vec<SeriesEntry>, StoreError> {
        const WHAT: &str = "reading the series index";
        // Rows expire by their TTL; a bucket past the retention is empty in every backend, even
        // for rows the node has not dropped yet.
        let (width, ttl) = (self.settings().bucket_width, self.settings().ttl_seconds);
        if expired(bucket.end(width), ttl, TimestampMs::now()) {
            return Ok(Vec::new());
        }
        let values = (service.as_str(), bucket.epoch_seconds());
        let statement = &self.statements.select_series;
        let rows = self
            .read_pages(
                statement,
                &values,
                MAX_WHOLE_PARTITION_ROWS + 1,
                WHAT,
                |rows, out| {
                    for row in typed_rows::<SeriesRow>(rows, WHAT)? {
                        let row = row?;
                        let (instance, method, path) =
                            stored_names(WHAT, row.instance, row.method, row.path)?;
                        out.push(SeriesEntry {
                            service: service.clone(),
                            bucket,
                            instance,
                            method,
                            path,
                        });
                    }
                    Ok(())
                },
            )
            .await?;
        whole(rows, MAX_WHOLE_PARTITION_ROWS, WHAT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_partition_past_the_cap_is_an_error_not_a_cut_answer() {
        assert_eq!(whole(vec![1, 2, 3], 3, "reading").unwrap(), [1, 2, 3]);
        let error = whole(vec![1, 2, 3, 4], 3, "reading latest API readings").unwrap_err();
        assert!(matches!(error, StoreError::TooManyRows { limit: 3, .. }));
        assert!(!error.is_retryable());
        assert!(error.to_string().contains("more than 3 rows"), "{error}");
    }
}
