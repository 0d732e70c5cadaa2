//! Which worker owns a landing file when N lander processes share one landing and one bronze.
//!
//! Worker `I` of `N` (`--worker I/N`, `worker = "I/N"`, or `--workers N` with the pod name `lander-I` of a
//! Kubernetes StatefulSet in `$HOSTNAME`) takes exactly the files whose stable hash mod `N` is `I`:
//!
//! ```text
//! owner(file) = fnv1a64("<dataset>/<path within the dataset>") mod N
//! ```
//!
//! FNV-1a 64 (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`) over the UTF-8 bytes of the path
//! relative to landing, exactly as listed (`gharchive/2015-01-01-15.json.gz`). It is fixed here forever: every
//! worker, every version of lander, and `lander explain` must agree on it, so it is never Rust's randomized
//! `DefaultHasher`. A file's owner depends only on its name, never on its size or contents, so a file that grows
//! or is rewritten stays with the worker that read it first (as long as `N` does not change).
//!
//! Files of other workers are dropped right after listing, before anything is read or fingerprinted: the listing
//! is the only cost every worker pays for every file.

use std::fmt;
use std::str::FromStr;

/// FNV-1a 64 offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64 prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The stable 64-bit FNV-1a hash of `bytes` (see the module doc).
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
    })
}

/// One worker of a fixed-size group: index `index` in `0..count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSpec {
    /// This worker's index, `0..count`.
    pub(crate) index: u32,
    /// How many workers share landing.
    pub count: u32,
}

/// Why a worker specification is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignError {
    /// Not of the form `I/N` with `0 <= I < N`.
    #[error("invalid worker {given:?}: expected I/N with 0 <= I < N, e.g. 0/3")]
    Invalid {
        /// What was given.
        given: String,
    },
    /// `--workers N` without a host name ending in `-<index>`.
    #[error("--workers {count}: cannot derive this worker's index from the host name {host:?} (expected a StatefulSet pod name such as lander-0); use --worker I/N")]
    Hostname {
        /// The host name seen.
        host: String,
        /// The group size.
        count: u32,
    },
}

impl WorkerSpec {
    /// The worker that owns the landing file at `rel` (relative to landing: `<dataset>/<path>`) among `count`.
    pub fn owner_of(rel: &str, count: u32) -> u32 {
        (fnv1a64(rel.as_bytes()) % u64::from(count.max(1))) as u32
    }

    /// Whether this worker takes the landing file at `rel` (relative to landing).
    pub fn owns(&self, rel: &str) -> bool {
        Self::owner_of(rel, self.count) == self.index
    }

    /// The worker of `count` whose StatefulSet pod name (`<name>-<ordinal>`) is `host`.
    ///
    /// # Errors
    /// [`AssignError::Hostname`] when `host` does not end in `-<ordinal>` with an ordinal below `count`.
    pub(crate) fn from_hostname(host: &str, count: u32) -> Result<Self, AssignError> {
        let err = || AssignError::Hostname {
            host: host.to_string(),
            count,
        };
        // A pod's host name may be qualified (`lander-2.lander.ns.svc`): the pod name is its first label.
        let pod = host.split('.').next().unwrap_or_default();
        let (_, ordinal) = pod.rsplit_once('-').ok_or_else(err)?;
        let index: u32 = ordinal.parse().map_err(|_| err())?;
        if count == 0 || index >= count {
            return Err(err());
        }
        Ok(Self { index, count })
    }
}

impl FromStr for WorkerSpec {
    type Err = AssignError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || AssignError::Invalid {
            given: s.to_string(),
        };
        let (i, n) = s.trim().split_once('/').ok_or_else(err)?;
        let index: u32 = i.trim().parse().map_err(|_| err())?;
        let count: u32 = n.trim().parse().map_err(|_| err())?;
        if count == 0 || index >= count {
            return Err(err());
        }
        Ok(Self { index, count })
    }
}

impl fmt::Display for WorkerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_published_vectors() {
        // Test vectors of the FNV reference (http://www.isthe.com/chongo/src/fnv/test_fnv.c).
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn every_file_has_exactly_one_owner_and_owners_spread() {
        for count in [1u32, 2, 3, 7] {
            let workers: Vec<WorkerSpec> = (0..count)
                .map(|index| WorkerSpec { index, count })
                .collect();
            let mut per = vec![0usize; count as usize];
            for h in 0..240 {
                let rel = format!("gharchive/2015-01-{:02}-{}.json.gz", 1 + h / 24, h % 24);
                let owners: Vec<u32> = workers
                    .iter()
                    .filter(|w| w.owns(&rel))
                    .map(|w| w.index)
                    .collect();
                assert_eq!(owners.len(), 1, "{rel} among {count}: {owners:?}");
                per[owners[0] as usize] += 1;
            }
            // No worker is left without files, none takes more than twice its share.
            let share = 240 / count as usize;
            assert!(
                per.iter().all(|n| *n > 0 && *n <= 2 * share),
                "{count}: {per:?}"
            );
        }
    }

    #[test]
    fn the_dataset_is_part_of_the_hash() {
        let differs = (0..50).any(|i| {
            let p = format!("f-{i}.csv");
            WorkerSpec::owner_of(&format!("a/{p}"), 5) != WorkerSpec::owner_of(&format!("b/{p}"), 5)
        });
        assert!(differs);
    }

    #[test]
    fn specs_parse_and_reject() {
        assert_eq!("1/3".parse(), Ok(WorkerSpec { index: 1, count: 3 }));
        assert_eq!(" 0 / 1 ".parse(), Ok(WorkerSpec { index: 0, count: 1 }));
        for bad in ["3/3", "0/0", "1", "-1/3", "a/b", "1/3/4", ""] {
            assert!(bad.parse::<WorkerSpec>().is_err(), "{bad}");
        }
        assert_eq!(WorkerSpec { index: 2, count: 5 }.to_string(), "2/5");
    }

    #[test]
    fn statefulset_pod_names_give_the_index() {
        let w = |h: &str, n| WorkerSpec::from_hostname(h, n);
        assert_eq!(w("lander-2", 3), Ok(WorkerSpec { index: 2, count: 3 }));
        assert_eq!(
            w("lander-0.lander.ingest.svc", 1),
            Ok(WorkerSpec { index: 0, count: 1 })
        );
        assert_eq!(
            w("my-lander-10", 12),
            Ok(WorkerSpec {
                index: 10,
                count: 12
            })
        );
        for (h, n) in [("lander-3", 3), ("lander", 3), ("lander-x", 3), ("", 2)] {
            assert!(w(h, n).is_err(), "{h} of {n}");
        }
    }
}
