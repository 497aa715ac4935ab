//! Splitting a broker URL, `scheme://[userinfo@]host[,host...]/path?query`, the way every
//! adapter's configuration is written.
//!
//! The authority is split by hand before anything else sees it: it may hold a comma-
//! separated host list (which URL parsers reject) and credentials (which must never reach
//! an error message). Path and query are percent-decoded.
//!
//! # Credentials
//!
//! The credentials run to the **last `@`** of the URL, so a password may hold any
//! printable character, `/`, `?`, `#` and `@` included, encoded or not: passwords are
//! often generated, and a password split into the host list or the query would end up in
//! a validation error. The price is that a `@` in the path or the query must be written
//! `%40` (topic, stream and queue names never need one). Whatever the split, no error
//! quotes the input, the credentials or a decoded password.
//!
//! ```
//! let url = wharf::adapter::broker_url::parse("kafka://app:s3cret@h1:9092,h2:9092/orders?group=g", &["kafka"])?;
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

/// `input` with neither its credentials nor its query (where options such as
/// `rdkafka.sasl.password` may hold secrets): `scheme://hosts/path`, for a catalog or a
/// log line. `<not a URL>` when there is no `://`.
///
/// ```
/// use wharf::adapter::broker_url::redacted;
/// assert_eq!(redacted("amqps://app:s3cr@t@rabbit:5671/%2f?queue=orders"), "amqps://rabbit:5671/%2f");
/// assert_eq!(redacted("kafka://h1:9092,h2:9092/orders?rdkafka.sasl.password=x"), "kafka://h1:9092,h2:9092/orders");
/// assert_eq!(redacted("memory://"), "memory://");
/// ```
pub fn redacted(input: &str) -> String {
    let Some((scheme, rest)) = input.split_once("://") else {
        return "<not a URL>".to_owned();
    };
    // The credentials run to the last `@` (see the module docs).
    let rest = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    format!("{scheme}://{}", &rest[..end])
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
        // Quoted only when it looks like a scheme: in a malformed URL the text before
        // `://` may hold a password.
        let looks_like_one = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        let said = if looks_like_one {
            format!("unsupported scheme `{scheme}`")
        } else {
            "no scheme".to_owned()
        };
        return Err(Error::config(
            "url",
            format!("{said} (expected {})", expected()),
        ));
    }
    // The credentials first, up to the last `@` (see the module docs), so that nothing of
    // a password that holds `/`, `?` or `#` is taken for the path or the query.
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((u, r)) => (Some(u.to_owned()), r),
        None => (None, rest),
    };
    let (hosts, path_query) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
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
        // Each name and value percent-decoded like the rest of the URL (`+` stays a plus:
        // a password in an option keeps it).
        query: query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                let name = decode(name, "url query")?;
                let value = decode(value, &name)?;
                Ok((name, value))
            })
            .collect::<Result<_, Error>>()?,
    })
}

/// Splits one `host[:port]` of [`BrokerUrl::hosts`] (`[v6]:port` for IPv6), using
/// `default_port` when none is given; `field` names it in the error.
///
/// ```
/// use wharf::adapter::broker_url::host_port;
/// assert_eq!(host_port("h:5673", 5672, "host")?, ("h".to_owned(), 5673));
/// assert_eq!(host_port("[::1]", 5672, "host")?, ("::1".to_owned(), 5672));
/// # Ok::<(), wharf::Error>(())
/// ```
pub fn host_port(host: &str, default_port: u16, field: &str) -> Result<(String, u16), Error> {
    let (name, port) = if let Some(v6) = host.strip_prefix('[') {
        let (name, after) = v6
            .split_once(']')
            .ok_or_else(|| Error::config(field, format!("`{host}`: `[` without `]`")))?;
        match after {
            "" => (name, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (name, Some(port)),
                None => {
                    return Err(Error::config(
                        field,
                        format!("`{host}`: expected `:port` after `]`"),
                    ))
                }
            },
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    if name.is_empty() {
        return Err(Error::config(field, "empty host name"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse()
            .map_err(|_| Error::config(field, format!("`{p}` is not a port number")))?,
    };
    Ok((name.to_owned(), port))
}

/// Percent-decodes one URL part: `%XX` becomes that byte; everything else, `+`, `&`, `=`
/// and a `%` not followed by two hex digits included, is kept as written. `field` names
/// it in the error (the result must be UTF-8); the value itself is never quoted.
pub fn decode(s: &str, field: &str) -> Result<String, Error> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| Some((hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?)))
            .flatten();
        match escaped {
            Some((hi, lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| Error::config(field, "is not UTF-8 once percent-decoded"))
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
    fn decoding_keeps_every_character_it_does_not_unescape() {
        // Failed before: decoding went through a form parser, which cut the value at
        // `&` (`p?a=1&b` became `p?a=1`).
        for (written, meant) in [
            ("p?a=1&b", "p?a=1&b"),
            ("a+b", "a+b"),
            ("p%40ss", "p@ss"),
            ("100%", "100%"),
            ("%zz%4", "%zz%4"),
            ("%2f%2F", "//"),
            ("caf%C3%A9", "café"),
        ] {
            assert_eq!(decode(written, "password").unwrap(), meant, "{written}");
        }
        let e = decode("%ff%fe", "password").unwrap_err().to_string();
        assert!(e.contains("`password`") && !e.contains("ff"), "{e}");
    }

    #[test]
    fn credentials_run_to_the_last_at() {
        // Failed before the split moved to the last `@`: the authority ended at the first
        // `/` or `?`, so `pa/ss` put `ss@h:1` into the path and `pa` into the hosts.
        for password in ["pa/ss", "pa?ss=1", "pa#ss", "p@ss", "/?#@:,"] {
            let url = parse(
                &format!("kafka://u:{password}@h:1,h2:2/t?group=g"),
                &["kafka"],
            )
            .unwrap_or_else(|e| panic!("{password}: {e}"));
            assert_eq!(url.userinfo.as_deref(), Some(&*format!("u:{password}")));
            assert_eq!(url.hosts, ["h:1", "h2:2"]);
            assert_eq!(url.path, "t");
            assert_eq!(url.query, [("group".to_owned(), "g".to_owned())]);
        }
        // A `+` in an option (a password, say) stays a plus.
        let url = parse("kafka://h:1/t?rdkafka.sasl.password=a+b%26c", &["kafka"]).unwrap();
        assert_eq!(url.query[0].1, "a+b&c");
        // Text before `://` is quoted only when it is a scheme.
        let e = parse("u:hunter2@h://x", &["kafka"])
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        // A `@` in the query must be encoded: `%40` stays in the query.
        let url = parse("kafka://h:1/t?client_id=a%40b", &["kafka"]).unwrap();
        assert_eq!(url.userinfo, None);
        assert_eq!(url.query[0].1, "a@b");
    }

    #[test]
    fn host_and_port() {
        assert_eq!(host_port("h", 1, "host").unwrap(), ("h".to_owned(), 1));
        assert_eq!(
            host_port("[::1]:9", 1, "host").unwrap(),
            ("::1".to_owned(), 9)
        );
        for bad in ["h:x", ":1", "[::1", "[::1]x", "h:70000"] {
            let e = host_port(bad, 1, "host").unwrap_err().to_string();
            assert!(e.contains("host"), "{e}");
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
