//! Splitting a broker URL, `scheme://[userinfo@]host[,host...]/path?query`, the way every
//! adapter's configuration is written.
//!
//! The authority is split by hand before anything else sees it: it may hold a comma-
//! separated host list (which URL parsers reject) and credentials (which must never reach
//! an error message). Path and query are percent-decoded.
//!
//! ```
//! let url = wharf::broker_url::parse("kafka://app:s3cret@h1:9092,h2:9092/orders?group=g", &["kafka"])?;
//! assert_eq!(url.hosts, ["h1:9092", "h2:9092"]);
//! assert_eq!(url.path, "orders");
//! assert_eq!(url.query, [("group".to_owned(), "g".to_owned())]);
//! assert!(!format!("{url:?}").contains("s3cret"));
//! # Ok::<(), wharf::Error>(())
//! ```

use std::fmt;

use crate::error::Error;

/// The parts of a broker URL.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// The scheme, one of those the caller accepts.
    pub scheme: String,
    /// What stood before `@`, still percent-encoded (`user:password`, a token). Never
    /// printed.
    pub userinfo: Option<String>,
    /// The hosts (`host:port`), trimmed; at least one.
    pub hosts: Vec<String>,
    /// The path without its leading `/`, decoded.
    pub path: String,
    /// The query parameters in order, decoded.
    pub query: Vec<(String, String)>,
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerUrl")
            .field("scheme", &self.scheme)
            .field("userinfo", &self.userinfo.as_ref().map(|_| "***"))
            .field("hosts", &self.hosts)
            .field("path", &self.path)
            .field("query", &self.query)
            .finish()
    }
}

/// Splits `input`, accepting only `schemes`. Errors name the field `url` and never
/// repeat the input (it may hold a password).
pub fn parse(input: &str, schemes: &[&str]) -> Result<BrokerUrl, Error> {
    let expected = || {
        schemes
            .iter()
            .map(|s| format!("`{s}://...`"))
            .collect::<Vec<_>>()
            .join(" or ")
    };
    let (scheme, rest) = input
        .split_once("://")
        .ok_or_else(|| Error::config("url", format!("expected {}", expected())))?;
    if !schemes.contains(&scheme) {
        return Err(Error::config(
            "url",
            format!("unsupported scheme `{scheme}` (expected {})", expected()),
        ));
    }
    let (authority, path_query) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_owned()), h),
        None => (None, authority),
    };
    let hosts: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect();
    if hosts.is_empty() {
        return Err(Error::config("url", "no host"));
    }
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, q),
        None => (path_query, ""),
    };
    if path.contains('#') || query.contains('#') {
        return Err(Error::config("url", "fragments (`#...`) are not supported"));
    }
    Ok(BrokerUrl {
        scheme: scheme.to_owned(),
        userinfo,
        hosts,
        path: decode(path.trim_start_matches('/'), "url path")?,
        query: form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    })
}

/// Percent-decodes one URL part (`+` stays a plus); `field` names it in the error.
pub fn decode(s: &str, field: &str) -> Result<String, Error> {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| Error::config(field, "could not be decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_errors_or_debug() {
        let url = parse("nats://u:p%40ss@h:1/s?x=1", &["nats"]).unwrap();
        assert_eq!(url.userinfo.as_deref(), Some("u:p%40ss"));
        assert!(!format!("{url:?}").contains("p%40ss"));
        for bad in ["http://u:secret@h/", "u:secret@h", "nats://u:secret@/s"] {
            let e = parse(bad, &["nats"]).unwrap_err().to_string();
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn parts_are_decoded() {
        let url = parse("kafka://h:1/a%2Cb?k=v%20w&e=", &["kafka"]).unwrap();
        assert_eq!(url.path, "a,b");
        assert_eq!(
            url.query,
            [
                ("k".to_owned(), "v w".to_owned()),
                ("e".to_owned(), String::new())
            ]
        );
        assert_eq!(parse("kafka://h:1", &["kafka"]).unwrap().path, "");
    }
}
