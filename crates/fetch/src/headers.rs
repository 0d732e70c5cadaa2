//! HTTP header and URL parsing for downloads: `Retry-After`, `Content-Disposition`, `Content-Range`, validators
//! for `If-Range`, and the file name a URL gives.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{self, HeaderMap};
use reqwest::Url;

use super::FetchError;

/// Upper bound for a server's `Retry-After`, so a bogus value cannot park a download for days.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Parses a `Retry-After` value (delay in seconds, or an HTTP date), capped at [`MAX_RETRY_AFTER`].
pub(crate) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now.into())
            .unwrap_or(Duration::ZERO),
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Decodes `%XX` escapes (leaving malformed ones as they are) and replaces invalid UTF-8.
pub(crate) fn percent_decode(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

/// The raw (still percent-encoded) last path segment of `url`, when it is not empty.
pub(crate) fn url_file_name(url: &Url) -> Option<&str> {
    url.path_segments()
        .and_then(|mut segments| segments.next_back())
        .filter(|segment| !segment.is_empty())
}

/// The decoded file name of a `Content-Disposition` header (`filename*=UTF-8''…` preferred over `filename=`).
pub(crate) fn content_disposition_name(value: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for param in split_header_params(value) {
        let Some((key, raw)) = param.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let raw = raw.trim();
        if key == "filename*" {
            // RFC 5987: charset'language'percent-encoded-value
            let mut parts = raw.splitn(3, '\'');
            let (Some(charset), Some(_lang), Some(encoded)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("iso-8859-1") {
                extended = Some(percent_decode(encoded.trim_matches('"')));
            }
        } else if key == "filename" {
            plain = Some(unquote(raw));
        }
    }
    extended.or(plain)
}

/// Splits a header value on `;` outside double quotes.
fn split_header_params(value: &str) -> Vec<&str> {
    let mut params = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                params.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    params.push(&value[start..]);
    params
}

/// Removes surrounding double quotes and backslash escapes of a quoted-string.
fn unquote(raw: &str) -> String {
    let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return raw.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A `Content-Range: bytes start-end/total` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentRange {
    /// First byte of the body.
    pub start: u64,
    /// Last byte of the body (inclusive).
    pub end: u64,
    /// Length of the complete file, when the server knows it.
    pub(crate) total: Option<u64>,
}

/// Parses a `Content-Range` header of a 206 response.
pub(crate) fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    if end < start || total.is_some_and(|t| end >= t) {
        return None;
    }
    Some(ContentRange { start, end, total })
}

/// Parses a command-line URL, accepting only http and https.
pub(crate) fn parse_http_url(raw: &str) -> Result<Url, FetchError> {
    let url = Url::parse(raw).map_err(|e| FetchError::InvalidUrl {
        url: raw.to_string(),
        reason: e.to_string(),
    })?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(FetchError::InvalidUrl {
            url: raw.to_string(),
            reason: format!("scheme {other} is not supported (use http or https)"),
        }),
    }
}

/// A strong validator for `If-Range`: a strong ETag, else Last-Modified.
pub(crate) fn response_validator(headers: &HeaderMap) -> Option<String> {
    header_str(headers, header::ETAG)
        .filter(|etag| !etag.starts_with("W/"))
        .or_else(|| header_str(headers, header::LAST_MODIFIED))
}

/// The value of header `name` when it is present and visible ASCII.
pub(crate) fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::sanitize_file_name;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .expect("valid date")
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn url_names_are_percent_decoded_before_checks() {
        let url = Url::parse("http://h/files/..%2F..%2Fevil.csv?x=1").expect("url");
        let raw = url_file_name(&url).expect("segment");
        assert_eq!(percent_decode(raw), "../../evil.csv");
        assert!(sanitize_file_name(&percent_decode(raw), url.as_str()).is_err());
        // A literal `..` segment is already resolved by URL parsing.
        let url = Url::parse("http://h/a/../../b.csv").expect("url");
        assert_eq!(url_file_name(&url), Some("b.csv"));
        let url = Url::parse("http://h/dir/").expect("url");
        assert_eq!(url_file_name(&url), None);
        assert_eq!(percent_decode("100%.csv"), "100%.csv");
        assert_eq!(percent_decode("a%20b%zz%4"), "a b%zz%4");
    }

    #[test]
    fn content_disposition_names() {
        assert_eq!(
            content_disposition_name(r#"attachment; filename="ventas.csv""#).as_deref(),
            Some("ventas.csv")
        );
        assert_eq!(
            content_disposition_name(r#"attachment; filename="a;b \"q\".csv""#).as_deref(),
            Some(r#"a;b "q".csv"#)
        );
        assert_eq!(
            content_disposition_name(
                "attachment; filename=plain.csv; filename*=UTF-8''a%C3%B1o.csv"
            )
            .as_deref(),
            Some("año.csv")
        );
        assert_eq!(content_disposition_name("inline").as_deref(), None);
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some(ContentRange {
                start: 100,
                end: 199,
                total: Some(200)
            })
        );
        assert_eq!(
            parse_content_range("bytes 0-9/*").and_then(|r| r.total),
            None
        );
        assert_eq!(parse_content_range("bytes 5-4/10"), None);
        assert_eq!(parse_content_range("bytes 0-10/10"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }

    #[test]
    fn only_http_urls() {
        assert!(parse_http_url("https://data.gharchive.org/2015-01-01-0.json.gz").is_ok());
        assert!(parse_http_url("file:///etc/passwd").is_err());
        assert!(parse_http_url("not a url").is_err());
    }
}
