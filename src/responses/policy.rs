//! HTTP caching of query answers: a strong `ETag` from the answer's bytes
//! (one per representation: per content coding and per media type),
//! `If-None-Match` answered as RFC 9110 says (304 on GET and HEAD, 412 on
//! POST, `*` matching any current answer), `Vary` naming every request header
//! the answer depends on, and `Cache-Control` that lets
//! browsers and CDNs keep an answer but never serve it without asking
//! again (`max-age=0, must-revalidate`), so nothing downstream outlives the
//! cache's staleness bound.
use super::compression::Encoding;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use sha2::{Digest, Sha256};

/// How long shared caches may keep an answer without asking again, from
/// `--http-max-age`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `Cache-Control` of shared answers, built once.
    shared: HeaderValue,
}

impl Default for Settings {
    fn default() -> Self {
        Self::new(0)
    }
}

impl Settings {
    /// `max_age` 0 (the default): caches must ask again every time, so
    /// nothing downstream outlives the cache's bound. Above 0, an operator
    /// trades that bound for fewer requests: shared answers may be served
    /// for `max_age` seconds, and as long again while being revalidated.
    pub fn new(max_age: u32) -> Self {
        let shared = if max_age == 0 {
            HeaderValue::from_static("public, max-age=0, must-revalidate")
        } else {
            HeaderValue::from_str(&format!(
                "public, max-age={max_age}, stale-while-revalidate={max_age}"
            ))
            .expect("digits are a valid header value")
        };
        Self { shared }
    }

    /// The policy of a successful query answer.
    pub fn policy(&self, private: bool) -> Policy {
        if private {
            Policy::Private
        } else {
            Policy::Shared(self.shared.clone())
        }
    }
}

/// Who may keep an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// An answer that does not depend on who asks, asked without a token:
    /// shared caches may keep it, under this `Cache-Control`.
    Shared(HeaderValue),
    /// An answer for a signed-in caller, or one that depends on who asks:
    /// only their browser may keep it, and it must ask again before using it.
    Private,
    /// Mutations, errors and refusals: kept by nobody.
    NoStore,
}

impl Policy {
    /// The headers for an answer under this policy; with its `etag` unless
    /// nobody may keep it.
    pub fn apply(self, headers: &mut HeaderMap, etag: Option<HeaderValue>) {
        let cache_control = match self {
            Self::Shared(value) => value,
            Self::Private => HeaderValue::from_static("private, no-cache"),
            Self::NoStore => {
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                return;
            }
        };
        headers.insert(header::CACHE_CONTROL, cache_control);
        // The answer depends on who asks, its media type on what the client
        // accepts, and its bytes on the codings it accepts.
        headers.insert(
            header::VARY,
            HeaderValue::from_static("Authorization, Accept, Accept-Encoding"),
        );
        if let Some(etag) = etag {
            headers.insert(header::ETAG, etag);
        }
    }
}

/// A strong validator: 128 bits of the SHA-256 of the answer's bytes, so
/// two answers share it only if they are the same bytes.
pub fn etag(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    HeaderValue::try_from(format!("\"{}\"", hex::encode(&digest[..16])))
        .expect("hex digits are a valid header value")
}

/// The validator of an answer's bytes in `encoding`: a strong `ETag` names
/// one representation (RFC 9110 §8.8.3), so each coding gets its own,
/// derived from the tag of the plain bytes.
pub fn etag_in(etag: &HeaderValue, encoding: Encoding) -> HeaderValue {
    if encoding == Encoding::Identity {
        return etag.clone();
    }
    variant(etag, encoding.as_str())
}

/// The tag of another representation of the same answer: `"<tag>-<what>"`.
/// The same bytes sent under another media type are another
/// representation too, so the GraphQL endpoint derives their tag this way.
pub fn variant(etag: &HeaderValue, what: &str) -> HeaderValue {
    let plain = etag.to_str().unwrap_or("\"\"").trim_end_matches('"');
    HeaderValue::from_str(&format!("{plain}-{what}\""))
        .expect("a tag and a token are a valid header value")
}

/// What a request's `If-None-Match` makes of its answer (RFC 9110 §13.1.2,
/// §13.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// No `If-None-Match`, or it names nothing current: answer as usual.
    Holds,
    /// It names the current answer on a GET or HEAD: 304, the client's
    /// copy is current.
    NotModified,
    /// It names the current answer on any other method (POST): 412. The
    /// client asked for the request to be carried out only if no current
    /// answer matched, and one does.
    Failed,
}

/// The precondition of a request by `method` whose current answer has
/// `etag`. Only answers with a tag are current representations (the ones
/// anyone may keep): an error or a mutation's answer has none, so neither
/// a tag nor `*` can match it, and it is answered as usual. A query's
/// answer is worked out (or found kept) before this is asked: reading is
/// safe, and the tag is what the condition is about.
pub fn precondition(method: &Method, request: &HeaderMap, etag: &HeaderValue) -> Precondition {
    if !none_match_fails(request, etag) {
        Precondition::Holds
    } else if method == Method::GET || method == Method::HEAD {
        Precondition::NotModified
    } else {
        Precondition::Failed
    }
}

/// Whether `If-None-Match` names `etag` (RFC 9110 §13.1.2: `*`, or a list
/// compared weakly, so a `W/` prefix a proxy added still matches).
fn none_match_fails(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else {
        return false;
    };
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn if_none_match(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_etag_is_the_bytes() {
        assert_eq!(etag(b"{\"data\":1}"), etag(b"{\"data\":1}"));
        assert_ne!(etag(b"{\"data\":1}"), etag(b"{\"data\":2}"));
        assert_eq!(etag(b"").to_str().unwrap().len(), 34);
    }

    #[test]
    fn each_coding_has_its_own_tag() {
        let tag = etag(b"answer");
        assert_eq!(etag_in(&tag, Encoding::Identity), tag);
        let br = etag_in(&tag, Encoding::Brotli);
        let gzip = etag_in(&tag, Encoding::Gzip);
        assert_ne!(br, tag);
        assert_ne!(br, gzip);
        assert!(br.to_str().unwrap().ends_with("-br\""));
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_any() {
        let tag = etag(b"answer");
        let text = tag.to_str().unwrap().to_owned();
        assert!(none_match_fails(&if_none_match(&text), &tag));
        assert!(none_match_fails(&if_none_match(&format!("W/{text}")), &tag));
        assert!(none_match_fails(
            &if_none_match(&format!("\"other\", {text}")),
            &tag
        ));
        assert!(none_match_fails(&if_none_match("*"), &tag));
        assert!(!none_match_fails(&if_none_match("\"other\""), &tag));
        assert!(!none_match_fails(&HeaderMap::new(), &tag));
    }

    #[test]
    fn a_match_is_304_on_safe_methods_and_412_on_others() {
        let tag = etag(b"answer");
        let matching = if_none_match("*");
        assert_eq!(
            precondition(&Method::GET, &matching, &tag),
            Precondition::NotModified
        );
        assert_eq!(
            precondition(&Method::HEAD, &matching, &tag),
            Precondition::NotModified
        );
        assert_eq!(
            precondition(&Method::POST, &matching, &tag),
            Precondition::Failed
        );
        let other = if_none_match("\"other\"");
        for method in [Method::GET, Method::HEAD, Method::POST] {
            assert_eq!(precondition(&method, &other, &tag), Precondition::Holds);
        }
    }
}
