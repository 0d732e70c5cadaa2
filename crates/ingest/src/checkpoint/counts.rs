//! The record counts the checkpoint's stored records keep: [`StoredCounts`], the stored sibling of
//! [`RecordCounts`](crate::modes::RecordCounts).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Records written to bronze, dropped as duplicates and quarantined, as a stored record keeps them: a
/// [`BatchRecord`](super::BatchRecord) (`#[serde(flatten)]`: its fields `rows`, `duplicates`, `quarantined`) and
/// a [`FileRecord`](super::FileRecord) or [`BatchInput`](super::BatchInput) (`#[serde(flatten, with =
/// "records_spelling")]`: `records_ok`, `records_quarantined`, `records_duplicate`). The spellings are those the
/// records had before this type, so a store written then reads, and the JSON of `checkpoint list`, `show` and
/// `explain` (the records as stored) stays the same.
///
/// [`RecordCounts`](crate::modes::RecordCounts) without `unchecked`, which no stored record keeps.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCounts {
    /// Rows written to bronze.
    pub rows: u64,
    /// Records dropped as duplicates.
    pub duplicates: u64,
    /// Records quarantined.
    pub quarantined: u64,
}

impl std::ops::AddAssign for StoredCounts {
    fn add_assign(&mut self, o: Self) {
        self.rows += o.rows;
        self.duplicates += o.duplicates;
        self.quarantined += o.quarantined;
    }
}

/// The spelling of [`StoredCounts`] in a [`FileRecord`](super::FileRecord) and a
/// [`BatchInput`](super::BatchInput): `records_ok`, `records_quarantined`, `records_duplicate`, in this order.
pub(super) mod records_spelling {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Spelled {
        records_ok: u64,
        records_quarantined: u64,
        records_duplicate: u64,
    }

    pub(crate) fn serialize<S: Serializer>(c: &StoredCounts, s: S) -> Result<S::Ok, S::Error> {
        Spelled {
            records_ok: c.rows,
            records_quarantined: c.quarantined,
            records_duplicate: c.duplicates,
        }
        .serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<StoredCounts, D::Error> {
        let s = Spelled::deserialize(d)?;
        Ok(StoredCounts {
            rows: s.records_ok,
            duplicates: s.records_duplicate,
            quarantined: s.records_quarantined,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BatchIntent, CheckpointStore, FileStatus, IntentState};
    use super::*;

    // The records exactly as lander stored them before `StoredCounts` (keys in the order its structs had).
    const FILE: &str = r#"{"v":"1","dataset":"g","path":"g/a.json","size":10,"modified":"2026-01-01T00:00:00Z","fingerprint":"00","head_hash":"01","bytes_consumed":10,"prefix_hash":"abab","lines_consumed":4,"records_ok":3,"records_quarantined":1,"records_duplicate":2,"batches":[1,2],"versions":1,"status":"Partial","processed_at":"2026-01-01T00:00:01Z","continued_lines":[2],"records_truncated":1}"#;
    const INPUT: &str = r#"{"path":"g/a.json","start":0,"end":10,"records_ok":3,"records_quarantined":1,"records_duplicate":2}"#;
    const BATCH_TAIL: &str = r#""outputs":[{"path":"g/p.parquet","rows":3,"bytes":100}],"rows":3,"duplicates":2,"quarantined":1,"min_event_time":5,"max_event_time":null}"#;

    fn batch() -> String {
        format!(
            r#"{{"v":"1","id":2,"dataset":"g","started_at":"2026-01-01T00:00:00Z","committed_at":"2026-01-01T00:00:01Z","inputs":[{INPUT}],{BATCH_TAIL}"#
        )
    }

    fn counts() -> StoredCounts {
        StoredCounts {
            rows: 3,
            duplicates: 2,
            quarantined: 1,
        }
    }

    #[test]
    fn records_stored_before_stored_counts_read_and_are_written_the_same() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = CheckpointStore::open(dir.path()).expect("open");
        let batch = batch();
        // An intent in state `Committing` holds a whole sled commit: batch and file records without their tags.
        let commit = format!(
            r#"{{"batch":{},"files":[{}],"schema":null}}"#,
            batch.replacen(r#""v":"1","#, "", 1),
            FILE.replacen(r#""v":"1","#, "", 1)
        );
        let intent = format!(
            r#"{{"v":"1","id":2,"dataset":"g","state":"Committing","staging_prefix":"_staging/g/b2","finals":[],"started_at":"2026-01-01T00:00:00Z","token":"ab","commit":{commit}}}"#
        );
        for (key, value) in [
            ("file/g/g/a.json", FILE),
            ("batch/g/00000000000000000002", batch.as_str()),
            ("pending/g", intent.as_str()),
        ] {
            s.db.insert(key.as_bytes(), value.as_bytes())
                .expect("insert");
        }
        let f = s.file("g", "g/a.json").expect("read").expect("record");
        assert_eq!(f.counts, counts());
        assert_eq!(f.status, FileStatus::Partial);
        assert_eq!((f.lines_consumed, f.records_truncated), (4, 1));
        let b = s.batch("g", 2).expect("read").expect("record");
        assert_eq!(b.counts, counts());
        assert_eq!(b.inputs[0].counts, counts());
        let i: BatchIntent = s.intent("g").expect("read").expect("intent");
        assert_eq!(i.state, IntentState::Committing);
        let c = i.commit.clone().expect("the commit");
        assert_eq!(
            (c.batch.clone(), c.files[0].clone()),
            (b.clone(), f.clone())
        );
        // Written back, byte for byte the same.
        let text = |v: Vec<u8>| String::from_utf8(v).expect("utf8");
        assert_eq!(
            text(CheckpointStore::encode(&super::super::FileValue::V1(f))),
            FILE
        );
        assert_eq!(
            text(CheckpointStore::encode(&super::super::BatchValue::V1(b))),
            batch
        );
        assert_eq!(
            text(CheckpointStore::encode(&super::super::IntentValue::V1(i))),
            intent
        );
    }
}
