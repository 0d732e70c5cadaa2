//! `checkpoint export` and `checkpoint import`: every key and value as JSON lines, restored byte for byte.

use std::io::{BufRead, Write as _};

use anyhow::{bail, Context as _};

use super::{ExportArgs, ExportLine, ImportArgs};
use crate::checkpoint::{CheckpointStore, SCHEMA_VERSION};
use crate::cli::output::{blocking, emit, open_read, open_write};
use crate::cli::{load_config, UsageError};

/// The export line of one key/value: JSON values are embedded verbatim when that round-trips byte for byte.
fn export_line(key: &[u8], value: &[u8]) -> ExportLine {
    let (key, key_hex) = match std::str::from_utf8(key) {
        Ok(k) => (k.to_string(), false),
        Err(_) => (hex::encode(key), true),
    };
    let raw = std::str::from_utf8(value)
        .ok()
        .filter(|v| !v.contains(['\n', '\r']) && *v != "null")
        .and_then(|v| serde_json::value::RawValue::from_string(v.to_string()).ok())
        .filter(|r| r.get().as_bytes() == value);
    let value_hex = raw.is_none().then(|| hex::encode(value));
    ExportLine {
        key,
        key_hex,
        value: raw,
        value_hex,
    }
}

pub(super) async fn export(a: ExportArgs) -> anyhow::Result<()> {
    let config = load_config(&a.locations)?;
    let store = open_read(&config).await?;
    let entries = blocking(move || -> Result<_, crate::modes::RunError> {
        let mut entries = store.export()?;
        // The dedup index lives in run files, not in sled: export its keys in the old sled layout, which an
        // import restores and the next run moves back into runs.
        for ds in store.datasets()? {
            let last = store.last_batch_id(&ds)?;
            let runs = crate::dedup::index::open_committed(store.dir(), &ds, last)?;
            for (day, key) in runs.keys_by_day()? {
                entries.push((
                    CheckpointStore::legacy_dedup_entry(&ds, day, key),
                    Vec::new(),
                ));
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|a, b| a.0 == b.0);
        Ok(entries)
    })
    .await
    .context("while reading the checkpoint")?;
    let n = entries.len();
    blocking(move || -> anyhow::Result<()> {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for (k, v) in &entries {
            serde_json::to_writer(&mut out, &export_line(k, v))
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
                .context("while writing the export to stdout")?;
        }
        out.flush().context("while writing the export to stdout")
    })
    .await?;
    let _ = writeln!(std::io::stderr(), "exported {n} key(s)");
    Ok(())
}

fn parse_export(reader: impl BufRead, source: &str) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut entries = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("while reading {source}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |what: &str| anyhow::anyhow!("line {} of {source}: {what}", n + 1);
        let l: ExportLine = serde_json::from_str(&line).map_err(|e| bad(&e.to_string()))?;
        let key = if l.key_hex {
            hex::decode(&l.key)
                .map_err(|e| bad(&format!("key_hex is set but key is not hex: {e}")))?
        } else {
            l.key.into_bytes()
        };
        let value = match (l.value, l.value_hex) {
            (Some(v), None) => v.get().as_bytes().to_vec(),
            (None, Some(h)) => {
                hex::decode(&h).map_err(|e| bad(&format!("value_hex is not hex: {e}")))?
            }
            _ => return Err(bad("expected exactly one of value and value_hex")),
        };
        entries.push((key, value));
    }
    match entries.iter().find(|(k, _)| k == b"meta/schema_version") {
        None => {
            bail!("{source} is not a lander checkpoint export: it has no meta/schema_version key")
        }
        Some((_, v)) if v != SCHEMA_VERSION.to_string().as_bytes() => bail!(
            "{source} has checkpoint format version {}, this lander reads version {SCHEMA_VERSION}",
            String::from_utf8_lossy(v)
        ),
        Some(_) => Ok(entries),
    }
}

pub(super) async fn import(a: ImportArgs) -> anyhow::Result<()> {
    let config = load_config(&a.locations)?;
    let input = a.input.clone();
    let entries = blocking(move || match &input {
        Some(p) => {
            let f =
                std::fs::File::open(p).with_context(|| format!("while opening {}", p.display()))?;
            parse_export(std::io::BufReader::new(f), &p.display().to_string())
        }
        None => parse_export(std::io::stdin().lock(), "stdin"),
    })
    .await?;
    let store = open_write(&config, "import into it").await?;
    if !a.yes {
        refuse_to_replace(&store, &config.checkpoint).await?;
    }
    let n = entries.len();
    blocking(move || -> Result<(), crate::modes::RunError> {
        store.import(&entries)?;
        // The import holds the whole dedup state (as old-layout keys, see `export`): run files of the store it
        // replaced no longer describe it.
        let runs = store.dir().join("dedup");
        match std::fs::remove_dir_all(&runs) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(crate::dedup::index::IndexError::Io {
                    path: runs,
                    source: e,
                }
                .into())
            }
            _ => Ok(()),
        }
    })
    .await
    .context("while replacing the checkpoint content")?;
    emit(&format!(
        "imported {n} key(s) into {}\n",
        config.checkpoint.display()
    ))
}

/// Without `--yes`, an import only goes into an empty checkpoint: it replaces every key, and the files a
/// non-empty one records would be read again (their records deduplicated only within the horizon).
///
/// # Errors
/// [`UsageError`] (exit 2) naming what the checkpoint holds; checkpoint read failures.
async fn refuse_to_replace(store: &CheckpointStore, dir: &std::path::Path) -> anyhow::Result<()> {
    let s = store.clone();
    let (keys, files) = blocking(move || -> Result<_, crate::modes::RunError> {
        // `meta/` keys (the format version) are in every store, even one that never ingested anything.
        let keys = s
            .export()?
            .iter()
            .filter(|(k, _)| !k.starts_with(b"meta/"))
            .count();
        Ok((keys, s.files(None)?.len()))
    })
    .await
    .context("while reading the checkpoint")?;
    if keys == 0 {
        return Ok(());
    }
    Err(UsageError(format!(
        "checkpoint {} is not empty ({files} file record(s), {keys} key(s)): import replaces all of it; pass --yes \
         to replace it (`lander checkpoint export` first keeps a copy)",
        dir.display()
    ))
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_lines_keep_bytes_exactly() {
        for (k, v) in [
            (&b"meta/schema_version"[..], &b"1"[..]),
            (b"file/g/a", br#"{"v":"1","x":[1,2]}"#),
            (b"dexp/g/\xff\x00", b""),
            (b"wm/g", &7i64.to_be_bytes()),
            (b"k", b" 1"),
            (b"k", b"null"),
        ] {
            let line = serde_json::to_string(&export_line(k, v)).expect("encode");
            assert!(!line.contains('\n'));
            let back = parse_export(
                format!("{line}\n{{\"key\":\"meta/schema_version\",\"value\":{SCHEMA_VERSION}}}\n")
                    .as_bytes(),
                "test",
            )
            .expect("parse");
            assert_eq!(back[0], (k.to_vec(), v.to_vec()), "{line}");
        }
    }
}
