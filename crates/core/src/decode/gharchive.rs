//! GH Archive NDJSON (one event per line) to the bronze `gharchive` schema.
//!
//! Two source shapes are normalised into one schema:
//! - Events API (GH Archive 2011 re-export, 2012, 2015 onwards): `id`, `actor{id,login}`, `repo{id,name}`,
//!   `org{id,login}`, `created_at` in UTC (`...Z`).
//! - Timeline API (GH Archive until the end of 2014): no `id`, `actor` is the login string (with
//!   `actor_attributes{login}`), `repository{id,name,owner,organization}`, `created_at` with a local offset
//!   (`2013-02-15T00:00:02-08:00`), converted here to UTC.
//!
//! `payload` is kept as the exact JSON text of the source (lossless). Events without an `id` get the key
//! `h:<xxh3-128 of the line>` so the same event ingested twice dedups.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayRef, BooleanBuilder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::DateTime;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::lineage::{lineage_fields, Lineage};
use super::{
    key_hash, DecodeEnd, DecodeError, DecodeInput, DecodeItem, Decoded, Emitter, LineSource,
    QuarantineRecord, RecordError, CHUNK_BYTES, CHUNK_ROWS,
};

/// Index of `created_at` in [`schema`].
pub(crate) const TIME_COLUMN: usize = 3;

/// The bronze schema of the `gharchive` dataset.
pub(crate) fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
            let mut fields = vec![
                Field::new("id", DataType::Utf8, true),
                Field::new("event_key", DataType::Utf8, false),
                Field::new("type", DataType::Utf8, false),
                Field::new("created_at", ts, false),
                Field::new("actor_id", DataType::Int64, true),
                Field::new("actor_login", DataType::Utf8, true),
                Field::new("repo_id", DataType::Int64, true),
                Field::new("repo_name", DataType::Utf8, true),
                Field::new("org_id", DataType::Int64, true),
                Field::new("org_login", DataType::Utf8, true),
                Field::new("public", DataType::Boolean, true),
                Field::new("payload", DataType::Utf8, true),
            ];
            fields.extend(lineage_fields());
            Arc::new(Schema::new(fields))
        })
        .clone()
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    created_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    actor: Option<&'a RawValue>,
    #[serde(borrow, default)]
    actor_attributes: Option<Named<'a>>,
    #[serde(borrow, default)]
    repo: Option<Named<'a>>,
    #[serde(borrow, default)]
    repository: Option<Repository<'a>>,
    #[serde(borrow, default)]
    org: Option<Named<'a>>,
    #[serde(default)]
    public: Option<bool>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct Named<'a> {
    #[serde(default)]
    id: Option<i64>,
    #[serde(borrow, default)]
    login: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Repository<'a> {
    #[serde(default)]
    id: Option<i64>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    owner: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    organization: Option<Cow<'a, str>>,
}

/// One event in the normalised shape.
#[derive(Debug, PartialEq)]
pub(crate) struct Normalized<'a> {
    /// Source id, if the event has one.
    pub id: Option<Cow<'a, str>>,
    /// Event type.
    pub kind: Cow<'a, str>,
    /// Event time, µs since epoch, UTC.
    pub(crate) created_at: i64,
    /// Actor id.
    pub(crate) actor_id: Option<i64>,
    /// Actor login.
    pub(crate) actor_login: Option<Cow<'a, str>>,
    /// Repository id.
    pub(crate) repo_id: Option<i64>,
    /// `owner/name`.
    pub(crate) repo_name: Option<Cow<'a, str>>,
    /// Organisation id.
    pub(crate) org_id: Option<i64>,
    /// Organisation login.
    pub(crate) org_login: Option<Cow<'a, str>>,
    /// Public flag.
    pub(crate) public: Option<bool>,
    /// Raw payload JSON text.
    pub(crate) payload: Option<&'a str>,
}

/// Parses a GH Archive `created_at` to µs since epoch, UTC.
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y/%m/%d %H:%M:%S %z"))
        .ok()
        .map(|t| t.timestamp_micros())
}

fn invalid(field: &'static str, e: serde_json::Error) -> RecordError {
    RecordError::InvalidField {
        field,
        message: e.to_string(),
    }
}

/// Rejects a line that is valid JSON but not an object: a clearer reason than serde's "expected struct Event".
#[inline]
fn reject_non_object(line: &[u8]) -> Result<(), RecordError> {
    let kind = match line.trim_ascii_start().first() {
        Some(b'{') => None,
        Some(b'[') => Some("an array"),
        Some(b'"') => Some("a string"),
        Some(b't' | b'f') => Some("a boolean"),
        Some(b'n') => Some("null"),
        Some(b'-' | b'0'..=b'9') => Some("a number"),
        _ => Some("not JSON"),
    };
    if let Some(found) = kind {
        if found != "not JSON" && serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok() {
            return Err(RecordError::NotAnObject { found });
        }
    }
    Ok(())
}

/// The source id of an event from its raw `id` value (a JSON string or number; `null` is none).
#[inline]
fn source_id(id: Option<&RawValue>) -> Result<Option<Cow<'_, str>>, RecordError> {
    let Some(raw) = id else {
        return Ok(None);
    };
    let text = raw.get();
    Ok(if let Some(stripped) = text.strip_prefix('"') {
        // A JSON string id; ids never contain escapes, but decode properly if they do.
        if stripped.contains('\\') {
            Some(Cow::Owned(
                serde_json::from_str::<String>(text).map_err(|e| invalid("id", e))?,
            ))
        } else {
            Some(Cow::Borrowed(stripped.trim_end_matches('"')))
        }
    } else if text == "null" {
        None
    } else {
        Some(Cow::Borrowed(text))
    })
}

/// Actor id and login from `actor` (an object or a bare login), falling back to the old `actor_attributes`.
#[inline]
fn actor<'a>(
    actor: Option<&'a RawValue>,
    attributes: Option<Named<'a>>,
) -> Result<(Option<i64>, Option<Cow<'a, str>>), RecordError> {
    Ok(match actor {
        None => (None, attributes.and_then(|a| a.login)),
        Some(raw) if raw.get().starts_with('{') => {
            let a: Named<'_> = serde_json::from_str(raw.get()).map_err(|e| invalid("actor", e))?;
            (a.id, a.login)
        }
        Some(raw) if raw.get().starts_with('"') => {
            let login: Cow<'_, str> =
                serde_json::from_str(raw.get()).map_err(|e| invalid("actor", e))?;
            (None, Some(login))
        }
        Some(_) => (None, attributes.and_then(|a| a.login)),
    })
}

/// Repository id, `owner/name` and organisation login from `repo`, or else from the old `repository`.
#[inline]
fn repo<'a>(
    repo: Option<Named<'a>>,
    repository: Option<Repository<'a>>,
) -> (Option<i64>, Option<Cow<'a, str>>, Option<Cow<'a, str>>) {
    match (repo, repository) {
        (Some(r), _) => (r.id, r.name, None),
        (None, Some(r)) => {
            let name = match (r.owner, r.name) {
                (Some(o), Some(n)) => Some(Cow::Owned(format!("{o}/{n}"))),
                (None, n) => n,
                (Some(_), None) => None,
            };
            (r.id, name, r.organization)
        }
        (None, None) => (None, None, None),
    }
}

/// Parses and normalises one line.
///
/// # Errors
/// Why the line is quarantined.
pub(crate) fn normalize(line: &[u8]) -> Result<Normalized<'_>, RecordError> {
    if let Err(e) = std::str::from_utf8(line) {
        return Err(RecordError::NotUtf8 {
            offset: e.valid_up_to(),
        });
    }
    reject_non_object(line)?;
    let ev: Event<'_> =
        serde_json::from_slice(line).map_err(|e| RecordError::InvalidJson(e.to_string()))?;
    let kind = ev.kind.ok_or(RecordError::MissingField("type"))?;
    let created_raw = ev
        .created_at
        .ok_or(RecordError::MissingField("created_at"))?;
    let created_at = parse_time(&created_raw)
        .ok_or_else(|| RecordError::UnparseableTime(created_raw.to_string()))?;
    let id = source_id(ev.id)?;
    let (actor_id, actor_login) = actor(ev.actor, ev.actor_attributes)?;
    let (repo_id, repo_name, repo_org) = repo(ev.repo, ev.repository);
    let (org_id, org_login) = match ev.org {
        Some(o) => (o.id, o.login),
        None => (None, repo_org),
    };
    Ok(Normalized {
        id,
        kind,
        created_at,
        actor_id,
        actor_login,
        repo_id,
        repo_name,
        org_id,
        org_login,
        public: ev.public,
        payload: ev.payload.map(|p| p.get()),
    })
}

struct Builders {
    id: StringBuilder,
    event_key: StringBuilder,
    kind: StringBuilder,
    created_at: TimestampMicrosecondBuilder,
    actor_id: Int64Builder,
    actor_login: StringBuilder,
    repo_id: Int64Builder,
    repo_name: StringBuilder,
    org_id: Int64Builder,
    org_login: StringBuilder,
    public: BooleanBuilder,
    payload: StringBuilder,
    lineage: Lineage,
    keys: Vec<u128>,
}

impl Builders {
    fn new() -> Self {
        let ts = || TimestampMicrosecondBuilder::with_capacity(CHUNK_ROWS).with_timezone("UTC");
        let s = || StringBuilder::with_capacity(CHUNK_ROWS, CHUNK_ROWS * 16);
        Self {
            id: s(),
            event_key: s(),
            kind: s(),
            created_at: ts(),
            actor_id: Int64Builder::with_capacity(CHUNK_ROWS),
            actor_login: s(),
            repo_id: Int64Builder::with_capacity(CHUNK_ROWS),
            repo_name: s(),
            org_id: Int64Builder::with_capacity(CHUNK_ROWS),
            org_login: s(),
            public: BooleanBuilder::with_capacity(CHUNK_ROWS),
            // One record past CHUNK_BYTES still fits without regrowth in the common case.
            payload: StringBuilder::with_capacity(CHUNK_ROWS, CHUNK_BYTES + (256 << 10)),
            lineage: Lineage::new(),
            keys: Vec::with_capacity(CHUNK_ROWS),
        }
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn push(
        &mut self,
        ev: &Normalized<'_>,
        line: &[u8],
        src: &str,
        line_no: u64,
        offset: u64,
        ingested: i64,
    ) {
        match &ev.id {
            Some(id) => {
                self.id.append_value(id);
                self.event_key.append_value(id);
                self.keys.push(key_hash(b"id", id.as_bytes()));
            }
            None => {
                let h = key_hash(b"content", line.trim_ascii());
                self.id.append_null();
                self.event_key.append_value(format!("h:{h:032x}"));
                self.keys.push(h);
            }
        }
        self.kind.append_value(&ev.kind);
        self.created_at.append_value(ev.created_at);
        self.actor_id.append_option(ev.actor_id);
        self.actor_login.append_option(ev.actor_login.as_deref());
        self.repo_id.append_option(ev.repo_id);
        self.repo_name.append_option(ev.repo_name.as_deref());
        self.org_id.append_option(ev.org_id);
        self.org_login.append_option(ev.org_login.as_deref());
        self.public.append_option(ev.public);
        self.payload.append_option(ev.payload);
        self.lineage.push(src, line_no, offset, ingested);
    }

    fn finish(&mut self) -> Decoded {
        // Arrow builders give their buffers away on `finish` and regrow from nothing; start the next chunk with
        // builders sized for a whole chunk instead (regrowing an 8 MB payload buffer by doubling costs copies and
        // page faults on every chunk).
        let mut old = std::mem::replace(self, Builders::new());
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(old.id.finish()),
            Arc::new(old.event_key.finish()),
            Arc::new(old.kind.finish()),
            Arc::new(old.created_at.finish()),
            Arc::new(old.actor_id.finish()),
            Arc::new(old.actor_login.finish()),
            Arc::new(old.repo_id.finish()),
            Arc::new(old.repo_name.finish()),
            Arc::new(old.org_id.finish()),
            Arc::new(old.org_login.finish()),
            Arc::new(old.public.finish()),
            Arc::new(old.payload.finish()),
        ];
        columns.extend(old.lineage.finish());
        let batch =
            RecordBatch::try_new(schema(), columns).expect("builders match the gharchive schema");
        Decoded {
            batch,
            keys: old.keys,
            time_column: TIME_COLUMN,
        }
    }
}

/// Decodes NDJSON lines from `lines`.
///
/// # Errors
/// File-level failures of the stream (see [`DecodeError`]); [`DecodeError::Cancelled`] when `emit` says stop.
pub(crate) fn decode(
    lines: &mut LineSource,
    input: &DecodeInput,
    emit: &mut dyn FnMut(DecodeItem) -> bool,
) -> Result<DecodeEnd, DecodeError> {
    let mut b = Builders::new();
    let mut bad = Vec::new();
    let mut truncated = 0u64;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut out = Emitter {
        emit,
        path: &input.path,
    };
    let quarantine = |bad: &mut Vec<QuarantineRecord>, offset, line, reason: RecordError, raw| {
        bad.push(QuarantineRecord {
            source_file: input.path.clone(),
            line,
            offset,
            reason: reason.to_string(),
            raw,
        });
    };
    while let Some(at) = lines.next_line(&mut buf)? {
        if at.continuation {
            if !buf.is_empty() {
                let reason = RecordError::Continuation { line: at.line };
                quarantine(&mut bad, at.offset, at.line, reason, buf.clone());
            }
        } else if let Some(len) = at.too_long {
            truncated += 1;
            let reason = RecordError::TooLong {
                len,
                max: input.limits.max_record_bytes,
                kept: buf.len(),
            };
            quarantine(&mut bad, at.offset, at.line, reason, buf.clone());
        } else if buf.trim_ascii().is_empty() {
            continue;
        } else {
            match normalize(&buf).and_then(|ev| {
                input
                    .limits
                    .check_event_time(ev.created_at, input.ingested_at, "created_at")
                    .map(|()| ev)
            }) {
                Ok(ev) => b.push(
                    &ev,
                    &buf,
                    &input.path,
                    at.line,
                    at.offset,
                    input.ingested_at,
                ),
                Err(reason) => quarantine(&mut bad, at.offset, at.line, reason, buf.clone()),
            }
        }
        let full = b.len() >= CHUNK_ROWS || b.payload.values_slice().len() >= CHUNK_BYTES;
        if full {
            out.send(DecodeItem::Rows(b.finish()))?;
        }
        out.quarantine(&mut bad, false)?;
    }
    if b.len() > 0 {
        out.send(DecodeItem::Rows(b.finish()))?;
    }
    out.quarantine(&mut bad, true)?;
    Ok(DecodeEnd {
        end_offset: lines.offset,
        end_line: lines.line,
        truncated,
    })
}

/// The dedup key hash of a bronze `event_key` value: the event id's hash, or for an event without an id the
/// content hash it was written as (`h:` and 32 hex digits).
pub(crate) fn key_of_event_key(value: &str) -> u128 {
    value
        .strip_prefix("h:")
        .filter(|h| h.len() == 32)
        .and_then(|h| u128::from_str_radix(h, 16).ok())
        .unwrap_or_else(|| key_hash(b"id", value.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_api_shape() {
        let line = br#"{"id":"2489368070","type":"PushEvent","actor":{"id":9152315,"login":"davidjhulse"},"repo":{"id":28635890,"name":"davidjhulse/davesbingrewardsbot"},"payload":{"a": [1, 2]},"public":true,"created_at":"2015-01-01T00:00:00Z","org":{"id":5,"login":"o"}}"#;
        let n = normalize(line).expect("ok");
        assert_eq!(n.id.as_deref(), Some("2489368070"));
        assert_eq!(n.actor_id, Some(9152315));
        assert_eq!(
            n.repo_name.as_deref(),
            Some("davidjhulse/davesbingrewardsbot")
        );
        assert_eq!(n.org_login.as_deref(), Some("o"));
        assert_eq!(n.payload, Some(r#"{"a": [1, 2]}"#));
        assert_eq!(n.created_at, 1_420_070_400_000_000);
    }

    #[test]
    fn timeline_shape_converts_to_utc() {
        let line = br#"{"created_at":"2013-02-15T00:00:39-08:00","payload":{},"public":true,"type":"PushEvent","actor":"wlteo","actor_attributes":{"login":"wlteo"},"repository":{"id":8213224,"name":"first_app","owner":"wlteo","organization":"acme"}}"#;
        let n = normalize(line).expect("ok");
        assert_eq!(n.id, None);
        assert_eq!(n.actor_login.as_deref(), Some("wlteo"));
        assert_eq!(n.repo_name.as_deref(), Some("wlteo/first_app"));
        assert_eq!(n.org_login.as_deref(), Some("acme"));
        // 00:00:39 at -08:00 is 08:00:39 UTC.
        assert_eq!(n.created_at, parse_time("2013-02-15T08:00:39Z").expect("t"));
    }

    #[test]
    fn bad_lines_have_reasons() {
        let reason = |line: &[u8]| {
            normalize(line)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(reason(b"{not json").contains("invalid JSON"));
        assert_eq!(reason(br#"{"type":"X"}"#), "missing field \"created_at\"");
        assert!(reason(br#"{"type":"X","created_at":"yesterday"}"#).contains("unparseable"));
        assert!(reason(b"\xff\xfe").contains("UTF-8"));
        assert_eq!(reason(b"[1, 2]"), "not a JSON object: the line is an array");
        assert!(reason(b"42").contains("a number"));
        assert!(reason(b"[1, 2").contains("invalid JSON"));
    }

    #[test]
    fn numeric_and_null_ids() {
        let n =
            normalize(br#"{"id":42,"type":"X","created_at":"2015-01-01T00:00:00Z"}"#).expect("ok");
        assert_eq!(n.id.as_deref(), Some("42"));
        let n = normalize(
            br#"{"id":null,"type":"X","created_at":"2015-01-01T00:00:00Z","actor":null}"#,
        )
        .expect("ok");
        assert_eq!(n.id, None);
    }
}
