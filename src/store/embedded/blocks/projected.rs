//! The column-projected read of API readings (`store::projected`) on blocks: per block holding
//! the partition, only the time, tuple, code, duration and count columns are decoded (never the
//! ids), and each tuple's names are parsed once per block, not once per row.
//!
//! Every key is in at most one live block of a partition (see `blocks`), so the rows of all
//! blocks together are each reading exactly once without comparing ids.

use super::columns::{self, Column};
use super::file::{self, Block, PartitionMeta};
use super::{BlockError, Blocks};
use crate::model::kind::FieldType;
use crate::model::{
    ApiPath, ApiReading, HttpMethod, InstanceName, ReadingKind, StatusCode, TimestampMs,
};
use crate::store::{ApiColumns, ApiColumnsRequest, ApiSeriesColumns, StoreError};

impl Blocks {
    /// The answer to `request` (see `store::projected`): blocks in id order, stopping after the
    /// first block that takes the answer past the request's row budget.
    pub fn api_columns(&self, request: &ApiColumnsRequest) -> Result<ApiColumns, StoreError> {
        const WHAT: &str = "reading API columns";
        let mut answer = ApiColumns::default();
        let mut rows = 0u64;
        for (_, live) in self.snapshot(ApiReading::INFO.tag) {
            let Some(meta) = live.block.partition(&request.partition) else {
                continue;
            };
            if !meta.overlaps(request.from.millis(), request.to.millis()) {
                continue;
            }
            rows += project(&live.block, meta, request, &mut answer.series)
                .map_err(|e| e.into_store(WHAT))?;
            if rows > request.max_rows {
                break;
            }
        }
        Ok(answer)
    }
}

/// The index of the API field `name`, from the kind's declaration.
fn field(name: &str) -> usize {
    ApiReading::INFO
        .fields
        .iter()
        .position(|f| f.name == name)
        .expect("an API reading field")
}

/// Adds the rows of partition `meta` of `block` within the request's range to `out`, one entry
/// per tuple; returns how many rows.
fn project(
    block: &Block,
    meta: &PartitionMeta,
    request: &ApiColumnsRequest,
    out: &mut Vec<ApiSeriesColumns>,
) -> Result<u64, BlockError> {
    if meta.lens.len() != columns::column_count::<ApiReading>() {
        return Err(BlockError::Damaged(format!(
            "{}: a partition has {} columns, API readings {}",
            block.path.display(),
            meta.lens.len(),
            columns::column_count::<ApiReading>()
        )));
    }
    let bytes = block.columns(meta)?;
    let split = file::split(&bytes, &meta.lens);
    let wanted = [field("code"), field("duration_ms"), field("count")];
    let columns::Projection {
        timestamps,
        ordinals,
        columns,
    } = columns::project::<ApiReading>(&split, &wanted)?;
    let [Column::Int(codes), Column::Double(durations), Column::Int(counts)] = &columns[..] else {
        return Err(BlockError::Damaged(
            "API columns of unexpected types".into(),
        ));
    };
    // Rows are sorted by time: the range is one run of positions.
    let lo = timestamps.partition_point(|&t| t < request.from.millis());
    let hi = timestamps.partition_point(|&t| t <= request.to.millis());
    let bad = |what: String| BlockError::Damaged(format!("{}: {what}", block.path.display()));
    // Each tuple's rows in range, so that its entry's columns are allocated once: grown row
    // by row, their reallocations were a tenth of a 24 h stats scan.
    let mut rows_of = vec![0usize; meta.tuples.len()];
    for &ordinal in &ordinals[lo..hi] {
        if let Some(rows) = rows_of.get_mut(ordinal as usize) {
            *rows += 1;
        }
    }
    // The entry of each tuple of this block, made when its first row in range is met.
    let mut entry_of: Vec<Option<usize>> = vec![None; meta.tuples.len()];
    for row in lo..hi {
        let ordinal = ordinals[row] as usize;
        let slot = entry_of
            .get_mut(ordinal)
            .ok_or_else(|| bad(format!("tuple {ordinal} out of range")))?;
        let at = match *slot {
            Some(at) => at,
            None => {
                let mut entry = series(block, &meta.tuples[ordinal]).map_err(bad)?;
                entry.reserve(rows_of[ordinal]);
                out.push(entry);
                *slot = Some(out.len() - 1);
                out.len() - 1
            }
        };
        let code = StatusCode::parse(codes[row]).map_err(bad)?;
        let count = u32::try_from(counts[row]).map_err(|e| bad(e.to_string()))?;
        out[at].push(
            TimestampMs::from_millis(timestamps[row]),
            code,
            durations[row],
            count,
        );
    }
    Ok((hi - lo) as u64)
}

/// The place of text field `name` in a tuple (which holds the text fields in field order).
fn text_slot(name: &str) -> usize {
    let fields = ApiReading::INFO.fields;
    fields[..field(name)]
        .iter()
        .filter(|f| f.ty == FieldType::Text)
        .count()
}

/// An empty entry for the series of `tuple` (name numbers of instance, method, path).
fn series(block: &Block, tuple: &[u32]) -> Result<ApiSeriesColumns, String> {
    let name = |field: &str| {
        tuple
            .get(text_slot(field))
            .and_then(|&n| block.index.names.get(n as usize))
            .map(String::as_str)
            .ok_or_else(|| "a tuple names no such name".to_owned())
    };
    Ok(ApiSeriesColumns::new(
        InstanceName::parse(name("instance")?)?,
        HttpMethod::parse(name("method")?)?,
        ApiPath::parse(name("path")?)?,
    ))
}
