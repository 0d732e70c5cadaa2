//! Unit tests of the dedup index: run names, lookups, load cleanup, pruning, merging and eviction.

use super::*;

fn keys(day: i32, ks: &[u128]) -> BTreeMap<i32, Vec<u128>> {
    BTreeMap::from([(day, ks.to_vec())])
}

/// A fresh index of dataset `g` in a temporary directory, loaded with nothing committed.
fn fresh() -> (tempfile::TempDir, DedupIndex) {
    let dir = tempfile::tempdir().expect("tempdir");
    let idx = DedupIndex::new(dir.path());
    idx.load("g", 0, None).expect("load");
    (dir, idx)
}

/// Writes and publishes batch `b` of `g` holding `ks` on `day`.
fn commit(idx: &DedupIndex, b: u64, day: i32, ks: &[u128], horizon: Option<i32>) {
    let s = idx.write_batch("g", b, keys(day, ks)).expect("write");
    idx.publish(s, horizon).expect("publish");
}

#[test]
fn run_names_round_trip_including_days_before_1970() {
    for day in [-400, -1, 0, 16436, 20000] {
        let name = run_name(day, 3, 17);
        assert_eq!(parse_run_name(&name), Some((day, 3, 17)), "{name}");
    }
    assert_eq!(
        run_name(16436, 1, 2),
        "2015-01-01-b00000000000000000001-b00000000000000000002.run"
    );
    assert_eq!(parse_run_name(".2015-01-01-b1-b2.run.tmp"), None);
}

#[test]
fn lookups_are_exact_and_survive_reopen() {
    let (dir, idx) = fresh();
    let many: Vec<u128> = (0..50_000u128)
        .map(|i| i * 0x9E37_79B9_7F4A_7C15_F39C)
        .collect();
    let staged = idx.write_batch("g", 1, keys(10, &many)).expect("write");
    // Not visible before publish.
    assert!(!idx.snapshot("g").contains(many[0], 10).expect("read"));
    idx.publish(staged, None).expect("publish");
    let snap = idx.snapshot("g");
    assert!(many.iter().all(|k| snap.contains(*k, 10).expect("read")));
    assert!(
        !many.iter().any(|k| snap.contains(*k, 99).expect("read")),
        "keys are per (key, day): not found on another day"
    );
    let absent = (0..50_000u128)
        .filter(|i| snap.contains(i * 7 + 1, 10).expect("read"))
        .count();
    assert_eq!(absent, 0, "exact check rejects filter false positives");
    let idx2 = DedupIndex::new(dir.path());
    assert_eq!(
        idx2.load("g", 1, None).expect("load"),
        LoadReport::default()
    );
    assert!(idx2.snapshot("g").contains(many[123], 10).expect("read"));
    assert_eq!(idx2.snapshot("g").stats().keys, 50_000);
}

#[test]
fn uncommitted_runs_are_deleted_on_load() {
    let (dir, idx) = fresh();
    commit(&idx, 1, 5, &[1, 2], None);
    // Batch 2 writes its runs, then the process dies before the checkpoint commit.
    let s2 = idx.write_batch("g", 2, keys(5, &[3])).expect("write");
    drop(s2);
    let idx2 = DedupIndex::new(dir.path());
    let report = idx2.load("g", 1, None).expect("load");
    assert_eq!(report.uncommitted, 1);
    let snap = idx2.snapshot("g");
    assert!(snap.contains(1, 5).expect("read") && !snap.contains(3, 5).expect("read"));
    let files = std::fs::read_dir(dir.path().join("dedup/g"))
        .expect("dir")
        .count();
    assert_eq!(files, 1);
}

#[test]
fn prune_drops_whole_days_and_quiet_days_merge() {
    let (dir, idx) = fresh();
    for b in 1..=3u64 {
        commit(&idx, b, 10, &[b as u128 * 100], Some(0));
    }
    assert_eq!(idx.snapshot("g").stats().runs, 3);
    // Batch 4 touches day 11 only: day 10 goes quiet and is merged into one run.
    commit(&idx, 4, 11, &[400], Some(0));
    let st = idx.snapshot("g").stats();
    assert_eq!((st.runs, st.keys, st.days), (2, 4, 2));
    assert!(dir.path().join("dedup/g").join(run_name(10, 1, 3)).exists());
    // Batch 5 moves the horizon past day 10.
    commit(&idx, 5, 11, &[500], Some(11));
    let snap = idx.snapshot("g");
    assert!(!snap.contains(100, 10).expect("read"));
    assert!(snap.contains(400, 11).expect("read") && snap.contains(500, 11).expect("read"));
    assert_eq!(
        std::fs::read_dir(dir.path().join("dedup/g"))
            .expect("dir")
            .count(),
        2
    );
}

#[test]
fn interrupted_merge_keeps_the_merged_run_only() {
    let (dir, idx) = fresh();
    for b in 1..=2u64 {
        commit(&idx, b, 10, &[b as u128], None);
    }
    // A merge whose output was renamed into place but whose inputs were not deleted yet.
    let snap = idx.snapshot("g");
    let runs = snap.days.get(&10).expect("day 10").clone();
    merge_runs(&dir.path().join("dedup/g"), 10, &runs).expect("merge");
    let idx2 = DedupIndex::new(dir.path());
    let report = idx2.load("g", 2, None).expect("load");
    assert_eq!(report.superseded, 2);
    let st = idx2.snapshot("g").stats();
    assert_eq!((st.runs, st.keys), (1, 2));
}

#[test]
fn busy_days_are_bounded() {
    let (dir, idx) = fresh();
    for b in 1..=40u64 {
        commit(&idx, b, 10, &[b as u128], None);
        assert!(idx.snapshot("g").stats().runs as usize <= MAX_RUNS_PER_DAY);
    }
    let snap = idx.snapshot("g");
    assert!((1..=40u128).all(|k| snap.contains(k, 10).expect("read")));
    let idx2 = DedupIndex::new(dir.path());
    idx2.load("g", 40, None).expect("load");
    assert_eq!(idx2.snapshot("g").stats().keys, 40);
}

/// Installs `keys` as day `day`'s base run of `g` (batches up to 1).
fn install(idx: &DedupIndex, day: i32, keys: &[u128]) -> Arc<DatasetRuns> {
    let mut spill = idx.key_spill("g", day).expect("spill");
    spill.extend(keys).expect("extend");
    idx.install_day("g", day, 1, spill).expect("install")
}

#[test]
fn a_base_run_makes_a_day_complete_and_eviction_removes_it_first() {
    let (dir, idx) = fresh();
    commit(&idx, 1, 5, &[1], None);
    assert!(
        !idx.snapshot("g").is_complete(5),
        "a batch run alone is not the whole day"
    );
    // Bronze holds keys 1 and 2 for day 5 (batch 1 and another writer): the base run replaces batch 1's run.
    let snap = install(&idx, 5, &[2, 1, 2]);
    assert!(snap.is_complete(5) && snap.contains(2, 5).expect("read"));
    assert!(!snap.contains(2, 6).expect("read"), "per day");
    // An empty day is complete too.
    assert!(install(&idx, 7, &[]).is_complete(7));
    commit(&idx, 2, 5, &[3], None);
    assert!(
        idx.snapshot("g").is_complete(5),
        "later runs keep the day complete"
    );
    let idx2 = DedupIndex::new(dir.path());
    idx2.load("g", 2, None).expect("load");
    assert!(idx2.snapshot("g").is_complete(5) && idx2.snapshot("g").contains(3, 5).expect("read"));
    // A zero budget evicts every day but the protected one.
    assert_eq!(idx2.evict("g", 0, &[7]).expect("evict"), 1);
    let snap = idx2.snapshot("g");
    assert!(!snap.is_complete(5) && snap.is_complete(7));
    assert!(!snap.contains(1, 5).expect("read"));
}
