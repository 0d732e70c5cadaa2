//! Issue 24 on real servers: three workers over one landing and one Delta bronze on S3 (moto) and on HDFS (the
//! MiniDFSCluster), with the sample hours plus scaled copies (ids rewritten, so new events), the same events
//! landed under names owned by different workers, one worker SIGKILLed repeatedly at random moments and
//! restarted while the other two ingest, then the group changed from three workers to two (`--rebind`). Every
//! event is in the table exactly once (rows and distinct keys read back by delta-rs, against a count made here
//! from the landed bytes) and `checkpoint verify --keys` passes.
//!
//! The kill moments come from a seeded generator; the seed is printed (`LANDER_SEED=<n>` replays a failure,
//! `LANDER_WORKER_KILLS` changes the number of kills, 4 by default).

use std::path::{Path, PathBuf};

use std::process::Child;
use std::time::Duration;

use crate::common::backends::{Kind, Target};
use crate::common::data::{distinct_events, gz_lines};
use crate::common::delta::{rows_and_distinct, table_url};
use crate::common::workers::{checkpoint_of, copy_name, finish_on, gzip, log_on, owner, spawn_on};
use crate::common::*;

/// xorshift64*: deterministic kill moments, so a failure can be replayed from the printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

fn seed() -> u64 {
    std::env::var("LANDER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock");
            (t.as_nanos() as u64) | 1
        })
}

fn kills() -> usize {
    std::env::var("LANDER_WORKER_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
}

/// `lines` with each event's leading `"id":"N"` rewritten to `"id":"N-<tag>"`: the same events as new ones (what
/// scripts/bench_scale.py does to make scaled copies).
fn rewrite_ids(lines: &[Vec<u8>], tag: &str) -> Vec<Vec<u8>> {
    const HEAD: &[u8] = b"{\"id\":\"";
    lines
        .iter()
        .map(|l| {
            assert!(l.starts_with(HEAD), "a 2015 event starts with its id");
            let end = HEAD.len()
                + l[HEAD.len()..]
                    .iter()
                    .position(|b| *b == b'"')
                    .expect("id ends");
            [&l[..end], b"-", tag.as_bytes(), &l[end..]].concat()
        })
        .collect()
}

/// What was landed: a local copy of every file's bytes (for the independent count).
struct Landed<'a> {
    t: &'a Target,
    dir: PathBuf,
    files: Vec<PathBuf>,
}

impl<'a> Landed<'a> {
    fn new(t: &'a Target) -> Self {
        let dir = t.wd.path().join("landed");
        std::fs::create_dir_all(&dir).expect("mkdir");
        Self {
            t,
            dir,
            files: Vec::new(),
        }
    }

    fn bytes(&mut self, name: &str, bytes: Vec<u8>) {
        let local = self.dir.join(name.replace('/', "__"));
        std::fs::write(&local, &bytes).expect("write");
        self.t.land_bytes("gharchive", name, bytes);
        self.files.push(local);
    }

    fn events(&self) -> usize {
        let refs: Vec<&Path> = self.files.iter().map(PathBuf::as_path).collect();
        distinct_events(&refs)
    }
}

/// The sample hours under their names and under a name owned by each other worker of 3; a file mixing half of
/// one 2015 hour with the other; two scaled copies of the 2015 hours (ids rewritten), each split in two files,
/// the second half also landed under a name another worker owns.
fn land_initial(l: &mut Landed) {
    for name in [
        "2013-02-15-0.json.gz",
        "2015-01-01-0.json.gz",
        "2015-01-01-1.json.gz",
    ] {
        let bytes = std::fs::read(gharchive(name)).expect("sample");
        let mine = owner(&format!("gharchive/{name}"), 3);
        let stem = name.trim_end_matches(".json.gz");
        for other in (0..3).filter(|o| *o != mine) {
            l.bytes(&copy_name(stem, 3, other), bytes.clone());
        }
        l.bytes(name, bytes);
    }
    let a = gz_lines(&gharchive("2015-01-01-0.json.gz"));
    let b = gz_lines(&gharchive("2015-01-01-1.json.gz"));
    let mixed: Vec<Vec<u8>> = a[a.len() / 2..]
        .iter()
        .chain(&b[..b.len() / 3])
        .cloned()
        .collect();
    l.bytes("mixed-2015-01-01.json.gz", gzip(&mixed));
    for k in 1..=2u64 {
        for (h, lines) in [(0, &a), (1, &b)] {
            let scaled = rewrite_ids(lines, &format!("s{k}"));
            let (first, second) = scaled.split_at(scaled.len() / 2);
            l.bytes(&format!("scaled/s{k}-h{h}-a.json.gz"), gzip(first));
            let name = format!("scaled/s{k}-h{h}-b.json.gz");
            let mine = owner(&format!("gharchive/{name}"), 3);
            l.bytes(&name, gzip(second));
            let other = copy_name(&format!("s{k}-h{h}-b"), 3, (mine + 1) % 3);
            l.bytes(&other, gzip(second));
        }
    }
}

fn verify_keys(t: &Target, i: usize) {
    let cp = checkpoint_of(&t.wd, i).display().to_string();
    t.run_ok(&[
        "checkpoint",
        "verify",
        "--keys",
        "--landing",
        &t.landing_url,
        "--bronze",
        &t.bronze_url,
        "--checkpoint",
        &cp,
    ]);
}

fn three_killed_then_two(kind: Kind) {
    let Some(_) = require_shared_data() else {
        return;
    };
    let seed = seed();
    let mut rng = Rng(seed);
    let victim = rng.below(3) as usize;
    let t = Target::new(kind);
    let mut landed = Landed::new(&t);
    land_initial(&mut landed);
    eprintln!(
        "{kind:?}: LANDER_SEED={seed}: worker {victim}/3 is killed {} times",
        kills()
    );
    let others: Vec<(usize, Child)> = (0..3)
        .filter(|i| *i != victim)
        .map(|i| (i, spawn_on(&t, i, 3, &[], &format!("w{i}-of-3"))))
        .collect();
    let mut landed_kills = 0;
    let mut moments = Vec::new();
    for k in 0..kills() {
        let tag = format!("w{victim}-of-3-run{k}");
        let mut child = spawn_on(&t, victim, 3, &[], &tag);
        let ms = 300 + rng.below(2700);
        moments.push(ms);
        std::thread::sleep(Duration::from_millis(ms));
        if child.try_wait().expect("try_wait").is_none() {
            child.kill().expect("SIGKILL");
            landed_kills += 1;
        }
        let status = child.wait().expect("wait");
        assert!(
            status.success() || status.code().is_none(),
            "{kind:?} seed {seed}: run {k} of worker {victim} failed:\n{}",
            log_on(&t, &tag)
        );
    }
    eprintln!(
        "{kind:?}: kill moments (ms after start) {moments:?}; {landed_kills} hit a running worker"
    );
    assert!(
        landed_kills > 0,
        "{kind:?} seed {seed}: every kill came after the worker had finished: {moments:?}"
    );
    let tag = format!("w{victim}-of-3-last");
    let last = spawn_on(&t, victim, 3, &[], &tag);
    finish_on(&t, last, &tag);
    for (i, c) in others {
        finish_on(&t, c, &format!("w{i}-of-3"));
    }
    // More files arrive (a new hour, a scaled copy, a repeat), then the group shrinks to two.
    for (name, src) in [
        ("late/2011-02-15-0.json.gz", "2011-02-15-0.json.gz"),
        ("late/again-2015-01-01-1.json.gz", "2015-01-01-1.json.gz"),
    ] {
        landed.bytes(name, std::fs::read(gharchive(src)).expect("sample"));
    }
    let lines = rewrite_ids(&gz_lines(&gharchive("2015-01-01-0.json.gz")), "s3");
    landed.bytes("late/s3-h0.json.gz", gzip(&lines));
    let two: Vec<(usize, Child)> = (0..2)
        .map(|i| (i, spawn_on(&t, i, 2, &["--rebind"], &format!("w{i}-of-2"))))
        .collect();
    for (i, c) in two {
        finish_on(&t, c, &format!("w{i}-of-2"));
    }
    let expected = landed.events();
    let (url, opts) = table_url(&t, kind, "gharchive");
    let (rows, distinct) = rows_and_distinct(&url, &opts, "event_key");
    assert_eq!(
        (rows, distinct),
        (expected, expected),
        "{kind:?} seed {seed}: rows and distinct keys vs the landed events"
    );
    verify_keys(&t, 0);
    verify_keys(&t, 1);
}

#[test]
fn three_workers_on_s3_one_killed_repeatedly_then_two_keep_every_event_once() {
    three_killed_then_two(Kind::S3);
}

#[test]
fn three_workers_on_hdfs_one_killed_repeatedly_then_two_keep_every_event_once() {
    three_killed_then_two(Kind::Hdfs);
}
