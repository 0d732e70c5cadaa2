//! `lander fetch url`: arbitrary http(s) files into `<landing>/<dataset>/`.

use std::collections::HashMap;

use tokio_util::sync::CancellationToken;

use super::headers::{parse_http_url, percent_decode, url_file_name};
use super::job::{Downloader, Job, Outcome};
use super::names::sanitize_file_name;
use super::progress::Progress;
use super::{validate_dataset, FetchContext, FetchError, FetchSummary, UrlArgs};

/// Runs `lander fetch url` until every URL is resolved. Cancelling stops new requests; downloads in flight keep
/// their partial temporary file and are counted as pending.
///
/// # Errors
/// Only conditions that stop the whole command: an invalid dataset or URL, an unusable landing, an HTTP client
/// that cannot be built. Per-file problems are counted in the summary.
pub async fn run_urls(
    args: UrlArgs,
    context: FetchContext,
    cancel: CancellationToken,
) -> Result<FetchSummary, FetchError> {
    validate_dataset(&args.dataset)?;
    let urls = args
        .urls
        .iter()
        .map(|raw| parse_http_url(raw))
        .collect::<Result<Vec<_>, _>>()?;
    let progress = Progress::new(Some(urls.len()));
    let downloader = Downloader::new(&args.download, context, progress).await?;
    downloader.remove_stale_temps(&args.dataset).await?;
    let mut summary = FetchSummary::default();
    let mut jobs = Vec::with_capacity(urls.len());
    let mut names: HashMap<String, String> = HashMap::new();
    for url in urls {
        let url_name = match url_file_name(&url)
            .map(|raw| sanitize_file_name(&percent_decode(raw), url.as_str()))
        {
            None => None,
            Some(Ok(name)) => Some(name),
            Some(Err(error)) => {
                downloader.progress().log(|| tracing::error!("{error}"));
                summary.failed += 1;
                continue;
            }
        };
        let (name, fallback_name) = if args.remote_header_name {
            (None, url_name)
        } else {
            (url_name, None)
        };
        if let Some(name) = &name {
            if let Some(other) = names.get(name) {
                let error = FetchError::DuplicateName {
                    name: name.clone(),
                    url: url.to_string(),
                    other: other.clone(),
                };
                downloader.progress().log(|| tracing::error!("{error}"));
                summary.failed += 1;
                continue;
            }
            names.insert(name.clone(), url.to_string());
        }
        jobs.push(Job {
            url,
            dataset: args.dataset.clone(),
            name,
            fallback_name,
        });
    }
    for outcome in downloader.fetch_all(jobs, &cancel).await {
        match outcome {
            Outcome::Fetched { bytes } => {
                summary.fetched += 1;
                summary.bytes += bytes;
            }
            Outcome::Skipped => summary.skipped += 1,
            Outcome::Cancelled => summary.pending += 1,
            // An explicitly requested URL that does not exist is a failure, not a gap.
            Outcome::NotFound { error } | Outcome::Failed { error } => {
                downloader.progress().log(|| tracing::error!("{error}"));
                summary.failed += 1;
            }
        }
    }
    downloader.finish();
    Ok(summary)
}
