//! `/v1/readings`: one page of raw API readings, in order, with a cursor for the next.
//!
//! The page is cut from the ordered merge of every partition of the range. The cursor is the
//! key of the last reading the page *consumed* — the last one returned, or a later one the
//! filters skipped — so the next page starts exactly after it: no reading is lost or repeated,
//! whatever bucket or shard the boundary falls in. To know whether a next page exists, the
//! merge looks one matching reading past the limit; only then is a cursor returned.
//!
//! A page also ends, with a cursor, after `max_scan_rows` rows were read without filling it (a
//! filter that matches little over a long range): the client follows the cursor as usual, and
//! every request stays bounded.

use super::answer::{ReadingOut, ReadingsAnswer};
use super::cursor;
use super::fanout::OrderedMerge;
use super::plan::{api_shard, plan, RangeRead};
use super::requests::ReadingsRequest;
use super::{Queries, QueryError};
use crate::model::ApiReading;
use crate::store::{ReadingKey, Store};

impl<S: Store> Queries<S> {
    /// `GET /v1/readings`: the page of readings after the request's cursor.
    pub async fn readings(&self, request: &ReadingsRequest) -> Result<ReadingsAnswer, QueryError> {
        self.known_service(&request.service).await?;
        let settings = self.store.settings();
        let filter = &request.filter;
        // Without filters no partition can contribute more than limit + 1 rows to the page.
        let page_rows = if filter.is_empty() {
            self.limits.page_rows.min(request.limit.saturating_add(1))
        } else {
            self.limits.page_rows
        };
        let read = RangeRead {
            service: &request.service,
            range: request.range,
            order: request.order,
            resume: request.resume,
            shard: api_shard(filter, settings.shards),
            page_rows,
        };
        // Pages cut to the limit usually end the answer; full pages are a long scan.
        let read_ahead = page_rows == self.limits.page_rows;
        let buckets = plan(&read, settings);
        let mut merge =
            OrderedMerge::<S, ApiReading>::new(self.reads(), buckets, request.order, read_ahead);
        let limit = request.limit as usize;
        let mut readings = Vec::with_capacity(limit.min(1024));
        let mut consumed: Option<ReadingKey> = None;
        let mut scanned = 0u64;
        let resume_after = loop {
            if scanned >= self.limits.max_scan_rows {
                break consumed;
            }
            let Some(row) = merge.next().await? else {
                break None;
            };
            scanned += 1;
            let key = ReadingKey::of(&row);
            if filter.matches(&row) {
                if readings.len() == limit {
                    break consumed;
                }
                readings.push(ReadingOut(row));
            }
            consumed = Some(key);
        };
        Ok(ReadingsAnswer {
            readings,
            next_cursor: resume_after.map(|key| cursor::encode(key, &request.fingerprint())),
        })
    }
}
