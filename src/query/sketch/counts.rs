//! Bucket counts as rollup rows store them (a serde `with` module): dense, a varint per bucket
//! with the empty ones included, or sparse, the number of buckets and then a varint gap and
//! count per non-empty bucket — whichever is shorter. postcard writes varints, so both sizes
//! are known before anything is written.
//!
//! Why both: a minute's partial of a few requests spreads them over a sketch's buckets, so it is
//! mostly empty buckets (a byte each when dense, nothing when sparse); a busy hour's sketch is
//! mostly full buckets (one varint each when dense, two when sparse). In the ingest bench's
//! partials the sparse form halves the sketch and makes a row about a third smaller.
//!
//! Layout (postcard): variant 0 `Dense(Vec<u64>)`, or variant 1 `Sparse(len, [(gap, count)])`
//! where the first gap is the first non-empty bucket's index and each next one the distance
//! from the previous non-empty bucket. Reading checks every index against `len`.

use serde::de::Error as _;
use serde::ser::{SerializeSeq, SerializeTupleVariant};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Buckets a sparse form may declare: far above any sketch (about 1,600 buckets span 1 ns to a
/// day), low enough that corrupt bytes cannot make a reader allocate gigabytes.
const MAX_BUCKETS: u64 = 1 << 20;

/// Bytes of `value` as a postcard varint.
fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// The non-empty buckets of `counts` as `(gap, count)`.
fn entries(counts: &[u64]) -> impl Iterator<Item = (u64, u64)> + '_ {
    let mut previous = 0;
    counts
        .iter()
        .enumerate()
        .filter(|(_, count)| **count > 0)
        .map(move |(index, count)| {
            let gap = (index - previous) as u64;
            previous = index;
            (gap, *count)
        })
}

/// The sparse form's entries, written as a sequence of known length.
struct Entries<'a> {
    counts: &'a [u64],
    len: usize,
}

impl Serialize for Entries<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len))?;
        for entry in entries(self.counts) {
            seq.serialize_element(&entry)?;
        }
        seq.end()
    }
}

/// Writes `counts` in the shorter of the two forms.
pub fn serialize<S: Serializer>(counts: &[u64], s: S) -> Result<S::Ok, S::Error> {
    let len = counts.len() as u64;
    // Both sizes in one pass over the non-empty buckets: a full one costs its count's varint
    // either way, plus its gap's sparse; each empty one a byte dense and nothing sparse.
    let (mut full, mut gaps, mut non_empty) = (0, 0, 0);
    for (gap, count) in entries(counts) {
        full += varint_len(count);
        gaps += varint_len(gap);
        non_empty += 1;
    }
    let dense = varint_len(len) + (counts.len() - non_empty) + full;
    let sparse = varint_len(len) + varint_len(non_empty as u64) + full + gaps;
    if sparse < dense {
        let mut variant = s.serialize_tuple_variant("Counts", 1, "Sparse", 2)?;
        variant.serialize_field(&len)?;
        variant.serialize_field(&Entries {
            counts,
            len: non_empty,
        })?;
        variant.end()
    } else {
        s.serialize_newtype_variant("Counts", 0, "Dense", counts)
    }
}

/// The stored forms, as read.
#[derive(Deserialize)]
enum Stored {
    Dense(Vec<u64>),
    Sparse(u64, Vec<(u64, u64)>),
}

/// Reads counts written by [`serialize`].
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    match Stored::deserialize(d)? {
        Stored::Dense(counts) => Ok(counts),
        Stored::Sparse(len, entries) => {
            if len > MAX_BUCKETS {
                return Err(D::Error::custom(format!("{len} buckets: corrupt counts")));
            }
            let mut counts = vec![0; len as usize];
            let mut index = 0u64;
            for (i, (gap, count)) in entries.into_iter().enumerate() {
                index = if i == 0 {
                    gap
                } else {
                    index.saturating_add(gap)
                };
                let slot = counts
                    .get_mut(index as usize)
                    .ok_or_else(|| D::Error::custom("a bucket past the counts' length"))?;
                *slot = count;
            }
            Ok(counts)
        }
    }
}

/// The same for a fixed number of buckets (a `[u64; N]` field).
pub mod fixed {
    use super::*;

    /// Writes `counts` as [`super::serialize`] does.
    pub fn serialize<S: Serializer, const N: usize>(
        counts: &[u64; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        super::serialize(counts, s)
    }

    /// Reads exactly `N` buckets.
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u64; N], D::Error> {
        let counts = super::deserialize(d)?;
        let len = counts.len();
        counts
            .try_into()
            .map_err(|_| D::Error::custom(format!("{len} buckets where {N} were expected")))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Wrapped(#[serde(with = "super")] Vec<u64>);

    fn bytes(counts: &[u64]) -> Vec<u8> {
        postcard::to_allocvec(&Wrapped(counts.to_vec())).unwrap()
    }

    #[test]
    fn the_shorter_form_is_written() {
        // Two requests 300 buckets apart: sparse, 9 bytes instead of 304.
        let mut far = vec![0; 301];
        far[0] = 1;
        far[300] = 1;
        assert_eq!(bytes(&far).len(), 1 + 2 + 1 + 2 + 2 + 1);
        // Every bucket full: dense, a byte each plus the length and the tag.
        let full = vec![3; 40];
        assert_eq!(bytes(&full).len(), 1 + 1 + 40);
        assert_eq!(bytes(&[]).len(), 2);
    }

    #[test]
    fn corrupt_sparse_counts_are_refused() {
        // Variant 1, 4 buckets, one entry at index 4.
        let past_the_end = [1, 4, 1, 4, 1];
        assert!(postcard::from_bytes::<Wrapped>(&past_the_end).is_err());
        let huge = postcard::to_allocvec(&(1u8, u64::MAX, 0u8)).unwrap();
        assert!(postcard::from_bytes::<Wrapped>(&huge).is_err());
    }

    #[test]
    fn a_fixed_array_needs_its_length() {
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Fixed(#[serde(with = "super::fixed")] [u64; 3]);
        let three = postcard::to_allocvec(&Fixed([0, 0, 9])).unwrap();
        assert_eq!(
            postcard::from_bytes::<Fixed>(&three).unwrap(),
            Fixed([0, 0, 9])
        );
        let four = postcard::to_allocvec(&Wrapped(vec![1, 2, 3, 4])).unwrap();
        assert!(postcard::from_bytes::<Fixed>(&four).is_err());
    }

    proptest! {
        #[test]
        fn counts_round_trip(
            counts in prop::collection::vec(prop_oneof![4 => Just(0u64), 1 => 0u64..1_000_000], 0..400),
        ) {
            let bytes = bytes(&counts);
            let dense = postcard::to_allocvec(&counts).unwrap();
            prop_assert!(bytes.len() <= dense.len() + 1, "never more than the tag over dense");
            prop_assert_eq!(postcard::from_bytes::<Wrapped>(&bytes).unwrap(), Wrapped(counts));
        }
    }
}
