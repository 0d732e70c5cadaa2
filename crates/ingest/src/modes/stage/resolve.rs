//! The decoder of a batch: GH Archive needs nothing; CSV takes the stored schema (or infers one from the first
//! file with rows), adds the columns that headers of this batch brought (`schema_evolution = "add_columns"`),
//! and reads the headers of files read from past their start, so their fields map by name too.

use std::collections::HashMap;
use std::sync::Arc;

use super::read::{decode_input, open_reader};
use super::Resolved;
use crate::checkpoint::StoredSchema;
use crate::config::DatasetConfig;
use crate::decode::csv::{CsvDecoder, CsvOptions, SchemaEvolution};
use crate::decode::{DecodeError, Decoder, LineSource};
use crate::modes::context::{blocking, Context};
use crate::modes::RunError;
use crate::source::LandingFile;
use crate::table::TableFormat;

/// The schema evolution mode of a CSV dataset: as configured, else `add_columns` on a Delta bronze (a new
/// `metaData` in the batch's commit) and `fail` on a plain-Parquet one, whose readers would meet parts of
/// different schemas.
fn evolution_mode(format: TableFormat, opts: &CsvOptions) -> SchemaEvolution {
    opts.schema_evolution.unwrap_or(match format {
        TableFormat::Delta => SchemaEvolution::AddColumns,
        TableFormat::Parquet => SchemaEvolution::Fail,
    })
}

/// Resolves the decoder of `dataset` for these files: GH Archive needs nothing; CSV uses the stored schema or
/// infers one from the first file with rows (each read from byte 0 for its header), plus the columns `added`
/// (header names) that files of this batch brought.
pub(super) async fn resolve_decoder(
    ctx: &Context,
    dataset: &str,
    files: &[LandingFile],
    added: &[String],
) -> Result<Resolved, RunError> {
    let opts = match ctx
        .config
        .datasets
        .get(dataset)
        .and_then(DatasetConfig::csv_options)
    {
        Some(o) => o.clone(),
        None => return Ok(Resolved::Ready(Decoder::Gharchive, None)),
    };
    let mode = evolution_mode(ctx.config.table_format, &opts);
    let headers = match continuation_headers(ctx, dataset, &opts, files).await? {
        Ok(h) => h,
        Err((i, e)) => return Ok(Resolved::FileFailed(i, e)),
    };
    // Rows carry `_record_key` unless this dataset's bronze was written without it (its schema is kept).
    let record_key = crate::modes::keys::csv_record_key(ctx, dataset).await?;
    if !record_key {
        tracing::debug!(dataset, "bronze has no _record_key column (written by an older lander): days that leave the local dedup index cannot be read back, and their records are counted as unchecked");
    }
    let csv = CsvBuild {
        dataset,
        opts: &opts,
        added,
        mode,
        headers,
        record_key,
    };
    let cp = ctx.checkpoint.clone();
    let ds = dataset.to_string();
    let stored = blocking(move || cp.schema(&ds)).await?;
    if let Some(schema) = stored {
        let (dec, evolved) = csv.build(&schema)?;
        // The evolved schema is stored with the batch's commit, so the next batch starts from it.
        let store = (evolved != schema).then(|| {
            let cols: Vec<String> = evolved.columns[schema.columns.len()..]
                .iter()
                .map(|c| format!("{}:{}", c.name, c.ty))
                .collect();
            tracing::info!(dataset, columns = %cols.join(", "), "the CSV schema evolves: columns added");
            evolved
        });
        return Ok(Resolved::Ready(dec, store));
    }
    infer_decoder(ctx, &csv, files).await
}

/// What a CSV decoder of the batch is built from, besides its schema.
struct CsvBuild<'a> {
    dataset: &'a str,
    opts: &'a CsvOptions,
    /// Header names of the columns that files of this batch add.
    added: &'a [String],
    mode: SchemaEvolution,
    /// Headers of the files read from past their start, by path.
    headers: HashMap<String, Vec<String>>,
    record_key: bool,
}

impl CsvBuild<'_> {
    /// The decoder for `schema` with the columns `added`, and that evolved schema.
    fn build(&self, schema: &StoredSchema) -> Result<(Decoder, StoredSchema), RunError> {
        let dataset = self.dataset;
        let evolved =
            crate::decode::csv::with_new_columns(schema, self.added, self.opts).map_err(|e| {
                DecodeError::Schema {
                    dataset: dataset.to_string(),
                    reason: e.to_string(),
                }
            })?;
        let dec = CsvDecoder::new(dataset, self.opts, &evolved)?
            .with_evolution(self.mode, self.headers.clone())
            .with_record_key(self.record_key);
        Ok((Decoder::Csv(Arc::new(dec)), evolved))
    }
}

/// The decoder of a CSV dataset with no stored schema: inferred from the first file of `files` with rows, else
/// provisional from a header-only one.
async fn infer_decoder(
    ctx: &Context,
    csv: &CsvBuild<'_>,
    files: &[LandingFile],
) -> Result<Resolved, RunError> {
    let dataset = csv.dataset;
    // The first file with rows fixes the schema; a header-only file would fix every undeclared column as text,
    // so its schema only decodes this batch (no rows) and is neither stored nor made the table's schema.
    let mut header_only = None;
    for (i, f) in files.iter().enumerate() {
        let input = decode_input(f, 0);
        let reader = match open_reader(&ctx.landing, f, 0, None).await {
            Ok(r) => r,
            Err(e) => return Ok(Resolved::FileFailed(i, e)),
        };
        let o = csv.opts.clone();
        let ds = dataset.to_string();
        let inferred = blocking(move || {
            let lines = LineSource::new(reader, &input)?;
            crate::decode::csv::infer_schema_sampled(lines, &o, &ds)
        })
        .await;
        match inferred {
            Ok((s, 0)) => {
                header_only.get_or_insert(s);
            }
            Ok((s, _)) => {
                let (dec, s) = csv.build(&s)?;
                let cols: Vec<String> = s
                    .columns
                    .iter()
                    .map(|c| format!("{}:{}", c.name, c.ty))
                    .collect();
                tracing::info!(dataset, from = %f.path, columns = %cols.join(", "), "inferred and fixed the CSV schema");
                return Ok(Resolved::Ready(dec, Some(s)));
            }
            Err(e) => return Ok(Resolved::FileFailed(i, e)),
        }
    }
    let Some(schema) = header_only else {
        return Ok(Resolved::FileFailed(
            0,
            DecodeError::Header {
                path: String::new(),
                dataset: dataset.to_string(),
                reason: "no stored schema and no file to infer one from".into(),
            },
        ));
    };
    tracing::info!(
        dataset,
        "no rows yet to infer the CSV schema from; it is fixed from the first file with rows"
    );
    let (dec, _) = csv.build(&schema)?;
    Ok(Resolved::Provisional(dec))
}

/// The headers of the files of `files` that are read from past their start (a plain file that grew), by path;
/// or the index of the first one whose header cannot be read, with why.
async fn continuation_headers(
    ctx: &Context,
    dataset: &str,
    opts: &CsvOptions,
    files: &[LandingFile],
) -> Result<Result<HashMap<String, Vec<String>>, (usize, DecodeError)>, RunError> {
    let mut headers = HashMap::new();
    if !opts.has_header {
        return Ok(Ok(headers));
    }
    for (i, f) in files.iter().enumerate() {
        if f.gzip || f.start_offset == 0 {
            continue;
        }
        let mut input = decode_input(f, 0);
        (input.start_offset, input.start_line, input.continues_line) = (0, 0, false);
        input.file_bytes = f.size;
        let reader = match open_reader(&ctx.landing, f, 0, None).await {
            Ok(r) => r,
            Err(e) => return Ok(Err((i, e))),
        };
        let (o, ds) = (opts.clone(), dataset.to_string());
        let header = blocking(move || {
            let lines = LineSource::new(reader, &input)?;
            crate::decode::csv::read_header(lines, &o, &ds)
        })
        .await;
        match header {
            Ok(Some(h)) => {
                headers.insert(f.path.clone(), h);
            }
            Ok(None) => {}
            Err(e) => return Ok(Err((i, e))),
        }
    }
    Ok(Ok(headers))
}
