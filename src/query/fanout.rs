//! Fan-out reads over many partitions: bounded concurrency, paging, and the ordered merge.
//!
//! Two shapes:
//! - [`OrderedMerge`]: the readings of every partition in `(timestamp, reading_id)` order (or
//!   its reverse). Buckets are disjoint in time, so it merges the shards of one bucket at a
//!   time (a k-way merge on a heap) and concatenates buckets. The next `lookahead` buckets —
//!   twice `concurrency` partitions, so that requests keep queueing while the merge is still
//!   busy with earlier buckets — are started together: a two-bucket query costs about one round
//!   trip of latency, not two. Each shard fetches its next page in the background: as soon as a
//!   full page arrives when the caller reads ahead (a scan of everything: the node never waits
//!   for the merge), else once half of the current page is used (a page sized to the answer's
//!   limit usually ends the query, and a second one would be wasted).
//! - [`scan`]: every page of every partition, in no particular order, `concurrency` partitions
//!   at a time — for aggregates, where order does not matter; [`scan_api_columns`] the same
//!   for the API stats, a partition's projected columns at a time.
//!
//! Invariants: at most `concurrency` reads of one query are in flight (a semaphore for the
//! merge, `flatten_unordered`'s limit for the scan); memory is bounded by the pages of the
//! buckets in the window (at most two pages per partition: 2 × concurrency × 2 × page rows),
//! never by the range; a read task still running when the merge is
//! dropped is aborted. A projected scan holds at most `concurrency` partitions' columns, each
//! cut short once past the query's row budget (about 22 bytes a row).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::model::ReadingKind;
use crate::store::{
    ApiColumns, ApiColumnsRequest, Order, PageRequest, ReadingKey, Store, StoreError,
};

/// The store and the concurrency budget of one query.
pub struct Reads<S> {
    store: Arc<S>,
    permits: Arc<Semaphore>,
    concurrency: usize,
}

impl<S: Store> Reads<S> {
    /// A budget of `concurrency` reads in flight (at least one).
    pub fn new(store: Arc<S>, concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            store,
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
        }
    }

    /// Starts reading a page in the background.
    fn spawn<K: ReadingKind>(&self, request: PageRequest) -> Pending<K> {
        let store = self.store.clone();
        let permits = self.permits.clone();
        Pending(tokio::spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            store.read_page::<K>(&request).await
        }))
    }
}

/// A page being read; aborted if dropped unfinished.
struct Pending<R>(JoinHandle<Result<Vec<R>, StoreError>>);

impl<R> Pending<R> {
    async fn join(mut self) -> Result<Vec<R>, StoreError> {
        match (&mut self.0).await {
            Ok(page) => page,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
}

impl<R> Drop for Pending<R> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One partition read page by page, with one page fetched ahead.
struct ShardReader<K: ReadingKind> {
    /// The request for the page after the rows fetched so far.
    request: PageRequest,
    buffer: VecDeque<K>,
    pending: Option<Pending<K>>,
    /// The last page was full, so the store may hold more.
    more: bool,
    /// Fetch the next page as soon as a full one arrives.
    read_ahead: bool,
}

impl<K: ReadingKind> ShardReader<K> {
    fn start<S: Store>(reads: &Reads<S>, request: PageRequest, read_ahead: bool) -> Self {
        Self {
            pending: Some(reads.spawn::<K>(request.clone())),
            request,
            buffer: VecDeque::new(),
            more: true,
            read_ahead,
        }
    }

    /// The next row, waiting for its page if needed; `None` once the partition is done.
    async fn peek<S: Store>(&mut self, reads: &Reads<S>) -> Result<Option<&K>, StoreError> {
        while self.buffer.is_empty() {
            let pending = match self.pending.take() {
                Some(pending) => pending,
                None if self.more => reads.spawn::<K>(self.request.clone()),
                None => return Ok(None),
            };
            let page = pending.join().await?;
            self.more = page.len() >= self.request.limit as usize;
            if let Some(last) = page.last() {
                self.request = self.request.next_after(ReadingKey::of(last));
            }
            self.buffer.extend(page);
            if self.read_ahead && self.more {
                self.pending = Some(reads.spawn::<K>(self.request.clone()));
            }
        }
        Ok(self.buffer.front())
    }

    /// Takes the head row; once half a page is left, starts fetching the next one.
    fn pop<S: Store>(&mut self, reads: &Reads<S>) -> Option<K> {
        let row = self.buffer.pop_front();
        let low = self.buffer.len() <= self.request.limit as usize / 2;
        if self.more && self.pending.is_none() && low {
            self.pending = Some(reads.spawn::<K>(self.request.clone()));
        }
        row
    }
}

/// A shard's head in the merge heap; the heap's top is the next row in the read order.
struct Head {
    key: ReadingKey,
    shard: usize,
    order: Order,
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap pops the greatest: the key that comes first in the order.
        self.order.cmp(&other.key, &self.key)
    }
}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Head {}

/// The shards of one bucket, merged.
struct BucketMerge<K: ReadingKind> {
    shards: Vec<ShardReader<K>>,
    heap: BinaryHeap<Head>,
    primed: bool,
}

impl<K: ReadingKind> BucketMerge<K> {
    async fn next<S: Store>(
        &mut self,
        reads: &Reads<S>,
        order: Order,
    ) -> Result<Option<K>, StoreError> {
        if !self.primed {
            for (shard, reader) in self.shards.iter_mut().enumerate() {
                if let Some(row) = reader.peek(reads).await? {
                    let key = ReadingKey::of(row);
                    self.heap.push(Head { key, shard, order });
                }
            }
            self.primed = true;
        }
        let Some(head) = self.heap.pop() else {
            return Ok(None);
        };
        let reader = &mut self.shards[head.shard];
        let row = reader.pop(reads);
        if let Some(next) = reader.peek(reads).await? {
            let key = ReadingKey::of(next);
            self.heap.push(Head {
                key,
                shard: head.shard,
                order,
            });
        }
        Ok(row)
    }
}

/// Every row of a planned range read, in order.
pub struct OrderedMerge<S, K: ReadingKind> {
    reads: Reads<S>,
    order: Order,
    waiting: VecDeque<Vec<PageRequest>>,
    started: VecDeque<BucketMerge<K>>,
    lookahead: usize,
    read_ahead: bool,
}

impl<S: Store, K: ReadingKind> OrderedMerge<S, K> {
    /// Merges the partitions of `buckets` (from [`plan`](super::plan::plan), in read order).
    /// With `read_ahead`, every partition fetches its next page as soon as a full one arrives
    /// (for reading everything); without, once half a page is used (for a page-limited answer).
    pub fn new(
        reads: Reads<S>,
        buckets: Vec<Vec<PageRequest>>,
        order: Order,
        read_ahead: bool,
    ) -> Self {
        let shards = buckets.first().map_or(1, Vec::len).max(1);
        let lookahead = (2 * reads.concurrency).div_ceil(shards).max(2);
        Self {
            reads,
            order,
            waiting: buckets.into(),
            started: VecDeque::new(),
            lookahead,
            read_ahead,
        }
    }

    /// The next row, or `None` when every partition is done.
    pub async fn next(&mut self) -> Result<Option<K>, StoreError> {
        loop {
            while self.started.len() < self.lookahead {
                let Some(requests) = self.waiting.pop_front() else {
                    break;
                };
                let shards = requests
                    .into_iter()
                    .map(|r| ShardReader::start(&self.reads, r, self.read_ahead))
                    .collect();
                self.started.push_back(BucketMerge {
                    shards,
                    heap: BinaryHeap::new(),
                    primed: false,
                });
            }
            let Some(bucket) = self.started.front_mut() else {
                return Ok(None);
            };
            if let Some(row) = bucket.next(&self.reads, self.order).await? {
                return Ok(Some(row));
            }
            self.started.pop_front();
        }
    }
}

/// Every page of every partition in `requests`, `concurrency` partitions at a time, in no
/// particular order.
pub fn scan<S: Store, K: ReadingKind>(
    reads: &Reads<S>,
    requests: Vec<PageRequest>,
) -> BoxStream<'static, Result<Vec<K>, StoreError>> {
    let store = reads.store.clone();
    stream::iter(requests)
        .map(move |request| partition_pages::<S, K>(store.clone(), request))
        .flatten_unordered(reads.concurrency)
        .boxed()
}

/// The projected API columns (`store::projected`) of every partition in `requests`,
/// `concurrency` partitions at a time, in no particular order: what [`scan`] reads for the
/// stats, without whole readings.
pub fn scan_api_columns<S: Store>(
    reads: &Reads<S>,
    requests: Vec<ApiColumnsRequest>,
) -> BoxStream<'static, Result<ApiColumns, StoreError>> {
    let store = reads.store.clone();
    stream::iter(requests)
        .map(move |request| {
            let store = store.clone();
            async move { store.read_api_columns(&request).await }
        })
        .buffer_unordered(reads.concurrency)
        .boxed()
}

/// The pages of one partition, one request at a time.
fn partition_pages<S: Store, K: ReadingKind>(
    store: Arc<S>,
    request: PageRequest,
) -> BoxStream<'static, Result<Vec<K>, StoreError>> {
    stream::try_unfold(Some(request), move |state| {
        let store = store.clone();
        async move {
            let Some(request) = state else {
                return Ok(None);
            };
            let page = store.read_page::<K>(&request).await?;
            let next = match page.last() {
                Some(last) if page.len() >= request.limit as usize => {
                    Some(request.next_after(ReadingKey::of(last)))
                }
                _ => None,
            };
            Ok(Some((page, next)))
        }
    })
    .boxed()
}
