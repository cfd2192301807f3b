//! [`CqlStore`]'s read path: one partition per request, prepared statements only.
//!
//! Every read is paged. A range page is a keyset slice capped by `LIMIT`; the driver may still
//! cut it short (Scylla ends pages early at 1 MB or on tombstones), so each read follows the
//! driver's paging state until it has `limit` rows or the result ends — a short answer therefore
//! really is the partition's last page. The latest-readings and series partitions are small
//! and read whole, page by page; one past [`MAX_WHOLE_PARTITION_ROWS`] is an error
//! ([`StoreError::TooManyRows`]), never a silently cut answer.
//!
//! Rows are turned back into the validated model types; a row that fails validation (written by
//! hand in cqlsh, say) is a [`StoreError::Decode`], never a panic.

use scylla::response::query_result::QueryRowsResult;
use scylla::response::{PagingState, PagingStateResponse};
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use scylla::DeserializeRow;
use uuid::Uuid;

use super::CqlStore;
use crate::model::{
    ApiPath, ApiReading, HostGauges, HostReading, HttpMethod, InstanceName, ReadingId, Seq,
    ServiceName, StatusCode, TimeBucket, TimestampMs,
};
use crate::store::{Order, PageRequest, SeriesEntry, StoreError};

/// Most rows a whole-partition read (series, latest) returns: far above any real partition,
/// a guard against a runaway answer.
const MAX_WHOLE_PARTITION_ROWS: usize = 1_000_000;

/// The rows of a whole-partition read that asked for one more than `limit`: all of them, or
/// an error when the partition held more than `limit`.
fn whole<T>(rows: Vec<T>, limit: usize, what: &'static str) -> Result<Vec<T>, StoreError> {
    if rows.len() > limit {
        return Err(StoreError::TooManyRows { what, limit });
    }
    Ok(rows)
}

/// An API row without its partition key.
#[derive(DeserializeRow)]
struct ApiRow<'a> {
    timestamp: CqlTimestamp,
    reading_id: Uuid,
    instance: &'a str,
    method: &'a str,
    path: &'a str,
    code: i32,
    duration_ms: f64,
    count: i32,
}

/// A host row without its partition key.
#[derive(DeserializeRow)]
struct HostRow<'a> {
    timestamp: CqlTimestamp,
    reading_id: Uuid,
    instance: &'a str,
    cpu_percent: Option<f64>,
    mem_used_bytes: Option<i64>,
    mem_total_bytes: Option<i64>,
    disk_used_bytes: Option<i64>,
    disk_total_bytes: Option<i64>,
    available: Option<bool>,
    heap_bytes: Option<i64>,
    allocated_bytes: Option<i64>,
    freed_bytes: Option<i64>,
}

/// A latest API row: the service, then the columns of [`ApiRow`].
#[derive(DeserializeRow)]
struct LatestApiRow<'a> {
    service_name: &'a str,
    instance: &'a str,
    method: &'a str,
    path: &'a str,
    timestamp: CqlTimestamp,
    reading_id: Uuid,
    code: i32,
    duration_ms: f64,
    count: i32,
}

impl<'a> LatestApiRow<'a> {
    fn split(self) -> (&'a str, ApiRow<'a>) {
        let row = ApiRow {
            timestamp: self.timestamp,
            reading_id: self.reading_id,
            instance: self.instance,
            method: self.method,
            path: self.path,
            code: self.code,
            duration_ms: self.duration_ms,
            count: self.count,
        };
        (self.service_name, row)
    }
}

/// A latest host row: the service, then the columns of [`HostRow`].
#[derive(DeserializeRow)]
struct LatestHostRow<'a> {
    service_name: &'a str,
    instance: &'a str,
    timestamp: CqlTimestamp,
    reading_id: Uuid,
    cpu_percent: Option<f64>,
    mem_used_bytes: Option<i64>,
    mem_total_bytes: Option<i64>,
    disk_used_bytes: Option<i64>,
    disk_total_bytes: Option<i64>,
    available: Option<bool>,
    heap_bytes: Option<i64>,
    allocated_bytes: Option<i64>,
    freed_bytes: Option<i64>,
}

impl<'a> LatestHostRow<'a> {
    fn split(self) -> (&'a str, HostRow<'a>) {
        let row = HostRow {
            timestamp: self.timestamp,
            reading_id: self.reading_id,
            instance: self.instance,
            cpu_percent: self.cpu_percent,
            mem_used_bytes: self.mem_used_bytes,
            mem_total_bytes: self.mem_total_bytes,
            disk_used_bytes: self.disk_used_bytes,
            disk_total_bytes: self.disk_total_bytes,
            available: self.available,
            heap_bytes: self.heap_bytes,
            allocated_bytes: self.allocated_bytes,
            freed_bytes: self.freed_bytes,
        };
        (self.service_name, row)
    }
}

/// A series index row.
#[derive(DeserializeRow)]
struct SeriesRow<'a> {
    instance: &'a str,
    method: &'a str,
    path: &'a str,
}

fn check<T>(what: &'static str, field: &str, parsed: Result<T, String>) -> Result<T, StoreError> {
    parsed.map_err(|reason| StoreError::decode(what, format!("column {field}: {reason}")))
}

fn api_reading(
    what: &'static str,
    service: &ServiceName,
    r: ApiRow<'_>,
) -> Result<ApiReading, StoreError> {
    Ok(ApiReading {
        id: ReadingId::from_uuid(r.reading_id),
        service: service.clone(),
        instance: check(what, "instance", InstanceName::parse(r.instance))?,
        method: check(what, "method", HttpMethod::parse(r.method))?,
        path: check(what, "path", ApiPath::parse(r.path))?,
        code: check(what, "code", StatusCode::parse(i64::from(r.code)))?,
        duration_ms: r.duration_ms,
        count: check(
            what,
            "count",
            u32::try_from(r.count).map_err(|e| e.to_string()),
        )?,
        timestamp: TimestampMs::from_millis(r.timestamp.0),
    })
}

fn host_reading(
    what: &'static str,
    service: &ServiceName,
    r: HostRow<'_>,
) -> Result<HostReading, StoreError> {
    Ok(HostReading {
        id: ReadingId::from_uuid(r.reading_id),
        service: service.clone(),
        instance: check(what, "instance", InstanceName::parse(r.instance))?,
        timestamp: TimestampMs::from_millis(r.timestamp.0),
        gauges: HostGauges {
            cpu_percent: r.cpu_percent,
            mem_used_bytes: r.mem_used_bytes,
            mem_total_bytes: r.mem_total_bytes,
            disk_used_bytes: r.disk_used_bytes,
            disk_total_bytes: r.disk_total_bytes,
            available: r.available,
            heap_bytes: r.heap_bytes,
            allocated_bytes: r.allocated_bytes,
            freed_bytes: r.freed_bytes,
        },
    })
}

/// The bind values of a range page, in statement order.
fn range_values(request: &PageRequest) -> (&str, i64, i32, CqlTimestamp, Uuid, CqlTimestamp, i32) {
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

/// Decodes every row of `rows` as `R` and appends what `convert` makes of it.
fn decode_rows<'frame, R, T>(
    rows: &'frame QueryRowsResult,
    what: &'static str,
    out: &mut Vec<T>,
    mut convert: impl FnMut(R) -> Result<T, StoreError>,
) -> Result<(), StoreError>
where
    R: scylla::deserialize::row::DeserializeRow<'frame, 'frame>,
{
    for row in rows.rows::<R>().map_err(|e| StoreError::decode(what, e))? {
        out.push(convert(row.map_err(|e| StoreError::decode(what, e))?)?);
    }
    Ok(())
}

impl CqlStore {
    /// Runs `statement` page by page (driver paging state) until the result ends or `limit`
    /// rows were decoded; `decode` turns one page of rows into items.
    async fn read_pages<T>(
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

    pub(super) async fn read_api_page(
        &self,
        request: &PageRequest,
    ) -> Result<Vec<ApiReading>, StoreError> {
        const WHAT: &str = "reading API readings";
        let statement = match request.order {
            Order::Asc => &self.statements.select_api_asc,
            Order::Desc => &self.statements.select_api_desc,
        };
        let service = &request.partition.service;
        let limit = request.limit as usize;
        self.read_pages(
            statement,
            &range_values(request),
            limit,
            WHAT,
            |rows, out| {
                decode_rows(rows, WHAT, out, |row: ApiRow| {
                    api_reading(WHAT, service, row)
                })
            },
        )
        .await
    }

    pub(super) async fn read_host_page(
        &self,
        request: &PageRequest,
    ) -> Result<Vec<HostReading>, StoreError> {
        const WHAT: &str = "reading host readings";
        let statement = match request.order {
            Order::Asc => &self.statements.select_host_asc,
            Order::Desc => &self.statements.select_host_desc,
        };
        let service = &request.partition.service;
        let limit = request.limit as usize;
        self.read_pages(
            statement,
            &range_values(request),
            limit,
            WHAT,
            |rows, out| {
                decode_rows(rows, WHAT, out, |row: HostRow| {
                    host_reading(WHAT, service, row)
                })
            },
        )
        .await
    }

    pub(super) async fn read_series_partition(
        &self,
        service: &ServiceName,
        bucket: TimeBucket,
    ) -> Result<Vec<SeriesEntry>, StoreError> {
        const WHAT: &str = "reading the series index";
        let values = (service.as_str(), bucket.epoch_seconds());
        let statement = &self.statements.select_series;
        let rows = self
            .read_pages(
                statement,
                &values,
                MAX_WHOLE_PARTITION_ROWS + 1,
                WHAT,
                |rows, out| {
                    for row in rows
                        .rows::<SeriesRow>()
                        .map_err(|e| StoreError::decode(WHAT, e))?
                    {
                        let row = row.map_err(|e| StoreError::decode(WHAT, e))?;
                        // Host-only instances are recorded with an empty method and path.
                        let api = !row.method.is_empty();
                        out.push(SeriesEntry {
                            service: service.clone(),
                            bucket,
                            instance: check(WHAT, "instance", InstanceName::parse(row.instance))?,
                            method: api
                                .then(|| check(WHAT, "method", HttpMethod::parse(row.method)))
                                .transpose()?,
                            path: api
                                .then(|| check(WHAT, "path", ApiPath::parse(row.path)))
                                .transpose()?,
                        });
                    }
                    Ok(())
                },
            )
            .await?;
        whole(rows, MAX_WHOLE_PARTITION_ROWS, WHAT)
    }

    pub(super) async fn read_latest_api_shard(
        &self,
        shard: Seq,
        service: Option<&ServiceName>,
    ) -> Result<Vec<ApiReading>, StoreError> {
        const WHAT: &str = "reading latest API readings";
        let statements = [
            &self.statements.select_latest_api,
            &self.statements.select_latest_api_of,
        ];
        self.read_latest(statements, shard, service, WHAT, |rows, out| {
            decode_rows(rows, WHAT, out, |row: LatestApiRow| {
                let (service, row) = row.split();
                let service = check(WHAT, "service_name", ServiceName::parse(service))?;
                api_reading(WHAT, &service, row)
            })
        })
        .await
    }

    pub(super) async fn read_latest_host_shard(
        &self,
        shard: Seq,
        service: Option<&ServiceName>,
    ) -> Result<Vec<HostReading>, StoreError> {
        const WHAT: &str = "reading latest host readings";
        let statements = [
            &self.statements.select_latest_host,
            &self.statements.select_latest_host_of,
        ];
        self.read_latest(statements, shard, service, WHAT, |rows, out| {
            decode_rows(rows, WHAT, out, |row: LatestHostRow| {
                let (service, row) = row.split();
                let service = check(WHAT, "service_name", ServiceName::parse(service))?;
                host_reading(WHAT, &service, row)
            })
        })
        .await
    }

    /// One latest shard whole: `[all, of_service]` select every row of the shard or only those
    /// of `service`.
    async fn read_latest<T>(
        &self,
        [all, of_service]: [&PreparedStatement; 2],
        shard: Seq,
        service: Option<&ServiceName>,
        what: &'static str,
        decode: impl FnMut(&QueryRowsResult, &mut Vec<T>) -> Result<(), StoreError> + Send,
    ) -> Result<Vec<T>, StoreError> {
        // One row more than the cap tells a partition at the cap from one past it.
        let limit = MAX_WHOLE_PARTITION_ROWS + 1;
        let rows = match service {
            Some(s) => {
                let values = (shard.get(), s.as_str());
                self.read_pages(of_service, &values, limit, what, decode)
                    .await?
            }
            None => {
                self.read_pages(all, &(shard.get(),), limit, what, decode)
                    .await?
            }
        };
        whole(rows, MAX_WHOLE_PARTITION_ROWS, what)
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
