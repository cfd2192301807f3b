//! Which replica scrapes a target, and when in its interval: both from a stable hash of the
//! target's job and URL, so every replica (and every restart) agrees without talking.
//!
//! Ownership is **rendezvous hashing** (highest random weight): replica `i` of `N` scrapes a
//! target when `hash(target, i)` is the largest of the `N` scores. Each target has exactly one
//! owner; adding or removing a target moves no other target; going from `N` to `N + 1` replicas
//! moves only the ~`1/(N+1)` of targets the new replica wins.
//!
//! The hash is FNV-1a (64 bit) followed by the SplitMix64 finaliser: fixed by this file, the
//! same on every platform and Rust version (unlike `std`'s `DefaultHasher`), and well mixed even
//! for inputs that differ in one byte.

use std::time::Duration;

/// This process's share of the targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replica {
    /// 0-based index of this replica.
    pub index: u32,
    /// How many replicas share the targets (at least 1).
    pub count: u32,
}

impl Default for Replica {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl Replica {
    /// A replica; `index` must be below `count`.
    pub fn new(index: u32, count: u32) -> Result<Self, String> {
        if count == 0 {
            return Err("--replica-count must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "--replica-index must be below --replica-count ({count}), got {index}"
            ));
        }
        Ok(Self { index, count })
    }

    /// The replica that scrapes the target `(job, url)`.
    pub fn owner_of(count: u32, job: &str, url: &str) -> u32 {
        (0..count.max(1))
            .max_by_key(|i| hash(&[b"owner", job.as_bytes(), url.as_bytes(), &i.to_le_bytes()]))
            .unwrap_or(0)
    }

    /// True when this replica scrapes `(job, url)`.
    pub fn owns(&self, job: &str, url: &str) -> bool {
        Self::owner_of(self.count, job, url) == self.index
    }
}

/// Where in each interval a target is scraped: its scrapes happen at wall-clock instants `t`
/// with `t ≡ offset (mod interval)`, so the targets of a job are spread over the interval and a
/// target keeps its phase across restarts and replicas.
pub fn offset(job: &str, url: &str, interval: Duration) -> Duration {
    let interval_ns = interval.as_nanos().max(1);
    let h = u128::from(hash(&[b"offset", job.as_bytes(), url.as_bytes()]));
    Duration::from_nanos(u64::try_from(h % interval_ns).unwrap_or(0))
}

/// The time from `now_since_epoch` to the next instant `≡ offset (mod interval)`.
pub fn until_next(now_since_epoch: Duration, offset: Duration, interval: Duration) -> Duration {
    let interval_ns = interval.as_nanos().max(1);
    let phase =
        (now_since_epoch.as_nanos() + interval_ns - offset.as_nanos() % interval_ns) % interval_ns;
    let wait = (interval_ns - phase) % interval_ns;
    Duration::from_nanos(u64::try_from(wait).unwrap_or(0))
}

fn hash(parts: &[&[u8]]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h = (h ^ u64::from(b)).wrapping_mul(PRIME);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        h = (h ^ 0xff).wrapping_mul(PRIME);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("http://10.0.{}.{}:9100/metrics", i / 250, i % 250))
            .collect()
    }

    #[test]
    fn every_target_has_exactly_one_owner_and_shares_are_even() {
        let targets = urls(3000);
        for count in [1, 2, 3, 5] {
            let mut shares = vec![0usize; count as usize];
            for url in &targets {
                let owners: Vec<u32> = (0..count)
                    .filter(|i| Replica::new(*i, count).unwrap().owns("node", url))
                    .collect();
                assert_eq!(owners.len(), 1, "{url}");
                shares[owners[0] as usize] += 1;
            }
            let fair = 3000 / count as usize;
            for share in shares {
                assert!(
                    share.abs_diff(fair) < fair / 5,
                    "{count} replicas: {share} vs {fair}"
                );
            }
        }
    }

    #[test]
    fn a_new_replica_takes_targets_only_for_itself() {
        let targets = urls(3000);
        let mut moved = 0;
        for url in &targets {
            let before = Replica::owner_of(3, "node", url);
            let after = Replica::owner_of(4, "node", url);
            if before != after {
                assert_eq!(after, 3, "a target moved between old replicas");
                moved += 1;
            }
        }
        assert!(
            (500..1000).contains(&moved),
            "about a quarter moves: {moved}"
        );
    }

    #[test]
    fn offsets_are_stable_and_the_next_slot_is_in_phase() {
        let interval = Duration::from_secs(15);
        let o = offset("node", "http://a:1/metrics", interval);
        assert!(o < interval);
        assert_eq!(o, offset("node", "http://a:1/metrics", interval));
        let now = Duration::from_millis(1_700_000_000_123);
        let wait = until_next(now, o, interval);
        assert!(wait < interval);
        assert_eq!((now + wait).as_nanos() % interval.as_nanos(), o.as_nanos());
        assert_eq!(until_next(now + wait, o, interval), Duration::ZERO);
        assert!(Replica::new(2, 2).is_err());
        assert!(Replica::new(0, 0).is_err());
    }
}
