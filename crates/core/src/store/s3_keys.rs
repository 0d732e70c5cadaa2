//! Listing S3 keys as they are, for the one case `object_store` cannot: a key no store path can hold.
//!
//! `object_store`'s S3 client converts a ListObjectsV2 page all or nothing, so one key with a control character
//! (`\x01`, a newline) fails its whole page: the keys before it on that page and every page after it are never
//! listed. [`S3Keys::list`] makes the same signed ListObjectsV2 requests itself (signed by `object_store`'s
//! [`AwsAuthorizer`] with the store's own credentials) with `encoding-type=url`, and returns every key raw; the
//! caller turns the keys it can into store paths and reports the others. Only used after such a failure, so the
//! common path stays `object_store`'s.

use chrono::{DateTime, Utc};
use object_store::aws::{AmazonS3, AwsAuthorizer};
use object_store::client::{HttpRequest, HttpRequestBody};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Characters a query value keeps unencoded (RFC 3986 unreserved), as SigV4 canonicalises them.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Pages requested at most by one listing (a bound on a misbehaving endpoint that never ends its listing).
const MAX_PAGES: usize = 100_000;

/// One listed object.
#[derive(Debug, Clone)]
pub struct RawObject {
    /// The key, exactly as stored.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time.
    pub last_modified: DateTime<Utc>,
    /// The e-tag, if any.
    pub e_tag: Option<String>,
}

/// A raw ListObjectsV2 client for one bucket.
#[derive(Debug)]
pub struct S3Keys {
    s3: AmazonS3,
    /// `<endpoint>/<bucket>` (path style).
    bucket_url: String,
    region: String,
    http: reqwest::Client,
}

fn generic(message: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "S3",
        source: message.into(),
    }
}

impl S3Keys {
    /// A client for the bucket of `s3`, built from the same `builder` options (endpoint, region).
    pub(crate) fn new(
        builder: &object_store::aws::AmazonS3Builder,
        s3: AmazonS3,
        bucket: &str,
    ) -> Self {
        use object_store::aws::AmazonS3ConfigKey as K;
        let region = builder
            .get_config_value(&K::Region)
            .unwrap_or_else(|| "us-east-1".to_string());
        let endpoint = builder
            .get_config_value(&K::Endpoint)
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        Self {
            s3,
            bucket_url: format!("{}/{bucket}", endpoint.trim_end_matches('/')),
            region,
            http: reqwest::Client::new(),
        }
    }

    /// Every object whose key starts with `prefix`, in key order.
    ///
    /// # Errors
    /// A failed request, credential or response (as `object_store::Error::Generic`).
    pub async fn list(&self, prefix: &str) -> object_store::Result<Vec<RawObject>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = format!(
                "{}?list-type=2&encoding-type=url&prefix={}",
                self.bucket_url,
                utf8_percent_encode(prefix, QUERY)
            );
            if let Some(t) = &token {
                url.push_str(&format!(
                    "&continuation-token={}",
                    utf8_percent_encode(t, QUERY)
                ));
            }
            let body = self.get(&url).await?;
            let page = parse_page(&body)?;
            out.extend(page.objects);
            match page.next {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
        Err(generic(format!(
            "listing {prefix} did not end after {MAX_PAGES} pages"
        )))
    }

    async fn get(&self, url: &str) -> object_store::Result<String> {
        let credential = self.s3.credentials().get_credential().await?;
        let mut request = HttpRequest::new(HttpRequestBody::from(Vec::new()));
        *request.uri_mut() = url
            .parse()
            .map_err(|e| generic(format!("bad listing url {url}: {e}")))?;
        AwsAuthorizer::new(&credential, "s3", &self.region).try_authorize(&mut request, None)?;
        let response = self
            .http
            .get(url)
            .headers(request.headers().clone())
            .send()
            .await
            .map_err(|e| generic(format!("listing request {url} failed: {e}")))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| generic(format!("listing response of {url} failed: {e}")))?;
        if !status.is_success() {
            return Err(generic(format!("listing {url} answered {status}: {text}")));
        }
        Ok(text)
    }
}

/// One ListObjectsV2 page.
struct Page {
    objects: Vec<RawObject>,
    next: Option<String>,
}

/// The text of the first `<tag>…</tag>` in `s`, entities decoded.
fn element(s: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = s.find(&open)? + open.len();
    let end = s[start..].find(&format!("</{tag}>"))? + start;
    Some(unescape(&s[start..end]))
}

/// XML entities, named and numeric.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let Some(end) = after.find(';') else {
            out.push_str(after);
            return out;
        };
        let entity = &after[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&after[..=end]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn parse_page(body: &str) -> object_store::Result<Page> {
    let url_encoded = element(body, "EncodingType").is_some_and(|e| e == "url");
    let decode = |s: String| -> String {
        if url_encoded {
            // `encoding-type=url` encodes a space as `+` in keys.
            let s = s.replace('+', "%20");
            percent_encoding::percent_decode_str(&s)
                .decode_utf8_lossy()
                .into_owned()
        } else {
            s
        }
    };
    let mut objects = Vec::new();
    for chunk in body.split("<Contents>").skip(1) {
        let chunk = chunk.split("</Contents>").next().unwrap_or(chunk);
        let key = element(chunk, "Key")
            .map(decode)
            .ok_or_else(|| generic("a listed object has no Key".into()))?;
        let size = element(chunk, "Size")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let last_modified = element(chunk, "LastModified")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        objects.push(RawObject {
            key,
            size,
            last_modified,
            e_tag: element(chunk, "ETag"),
        });
    }
    let truncated = element(body, "IsTruncated").is_some_and(|t| t == "true");
    let next = element(body, "NextContinuationToken").filter(|_| truncated);
    if truncated && next.is_none() {
        return Err(generic(
            "a truncated listing page has no continuation token".into(),
        ));
    }
    Ok(Page { objects, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_with_control_characters_in_keys_is_parsed_whole() {
        let body = r#"<?xml version="1.0"?><ListBucketResult><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>
<Contents><Key>l/sales/%01bad%0Aname.csv</Key><LastModified>2026-01-02T03:04:05.000Z</LastModified><ETag>&quot;abc&quot;</ETag><Size>12</Size></Contents>
<Contents><Key>l/sales/a+b%C3%B1.csv</Key><LastModified>2026-01-02T03:04:06Z</LastModified><Size>7</Size></Contents>
<NextContinuationToken>tok</NextContinuationToken></ListBucketResult>"#;
        let page = parse_page(body).expect("parsed");
        let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["l/sales/\u{1}bad\nname.csv", "l/sales/a bñ.csv"]);
        assert_eq!(page.objects[0].size, 12);
        assert_eq!(page.objects[0].e_tag.as_deref(), Some("\"abc\""));
        assert_eq!(page.next.as_deref(), Some("tok"));
        // Without encoding-type, numeric entities carry the control characters.
        let raw = "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a&#x1;&#10;b</Key><Size>1</Size></Contents></ListBucketResult>";
        let page = parse_page(raw).expect("parsed");
        assert_eq!(page.objects[0].key, "a\u{1}\nb");
        assert!(page.next.is_none());
    }
}
