//! The media types of GraphQL over HTTP: which one an answer is sent as
//! (`Accept`, weighed), whether a browser asks for GraphiQL, and whether a
//! request body is JSON we can read (`Content-Type`).
use crate::responses::policy;
use axum::http::{header, HeaderMap, HeaderValue};
use mime::Mime;

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MediaType {
    GraphqlResponseJson,
    Json,
}

impl MediaType {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::GraphqlResponseJson => GRAPHQL_RESPONSE_JSON,
            Self::Json => JSON,
        }
    }

    /// The validator of an answer sent as this type, from the validator of
    /// its bytes: the same bytes under two media types are two
    /// representations, so they must not share a strong tag. The
    /// specification's default keeps the bytes' own tag.
    pub(super) fn etag(self, etag: HeaderValue) -> HeaderValue {
        match self {
            Self::GraphqlResponseJson => etag,
            Self::Json => policy::variant(&etag, "json"),
        }
    }

    /// The type `Accept` weighs highest among those we produce (RFC 9110
    /// §12.5.1): each takes the weight of the most specific range naming
    /// it, `q=0` refuses it, and among equal weights the one listed first
    /// wins (the specification's default when one range names both). No
    /// header means the specification's default, graphql-response+json.
    pub(super) fn negotiate(headers: &HeaderMap) -> Option<Self> {
        let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
            return Some(Self::GraphqlResponseJson);
        };
        let ours = [Self::GraphqlResponseJson, Self::Json];
        // Per type: (specificity, weight, position) of the range that names it.
        let mut named: [Option<(u8, f32, usize)>; 2] = [None; 2];
        let ranges = accept
            .split(',')
            .filter_map(|range| range.trim().parse::<Mime>().ok());
        for (position, range) in ranges.enumerate() {
            let weight = match range.get_param("q") {
                None => 1.0,
                Some(q) => match q.as_str().parse::<f32>() {
                    Ok(q) if (0.0..=1.0).contains(&q) => q,
                    _ => continue,
                },
            };
            for (ty, slot) in ours.iter().zip(&mut named) {
                let specificity = match (range.type_(), range.subtype()) {
                    _ if range.essence_str() == ty.as_str() => 3,
                    (mime::APPLICATION, mime::STAR) => 2,
                    (mime::STAR, mime::STAR) => 1,
                    _ => continue,
                };
                if slot.is_none_or(|(more, ..)| specificity > more) {
                    *slot = Some((specificity, weight, position));
                }
            }
        }
        ours.into_iter()
            .zip(named)
            .filter_map(|(ty, slot)| slot.map(|(_, weight, position)| (ty, weight, position)))
            .filter(|&(_, weight, _)| weight > 0.0)
            // max_by keeps the last of equals; reversed, graphql-response+json.
            .rev()
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.2.cmp(&a.2)))
            .map(|(ty, ..)| ty)
    }
}

pub(super) fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// Whether `Content-Type` is JSON with no charset, or UTF-8 named as one:
/// JSON is UTF-8 (RFC 8259), so a body declared otherwise would be misread.
pub(super) fn is_utf8_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Mime>().ok())
    else {
        return false;
    };
    content_type.essence_str() == JSON
        && content_type.get_param(mime::CHARSET).is_none_or(|charset| {
            let charset = charset.as_str().trim_matches('"');
            charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn accept_negotiation_takes_the_highest_weight_then_the_first_listed() {
        assert_eq!(
            MediaType::negotiate(&HeaderMap::new()),
            Some(MediaType::GraphqlResponseJson)
        );
        assert_eq!(
            MediaType::negotiate(&accept("application/json")),
            Some(MediaType::Json)
        );
        assert_eq!(
            MediaType::negotiate(&accept(
                "application/graphql-response+json, application/json;q=0.9"
            )),
            Some(MediaType::GraphqlResponseJson)
        );
        assert_eq!(
            MediaType::negotiate(&accept("*/*")),
            Some(MediaType::GraphqlResponseJson)
        );
        assert_eq!(MediaType::negotiate(&accept("text/plain")), None);
        assert_eq!(MediaType::negotiate(&accept("application/json;q=0")), None);
        assert_eq!(
            MediaType::negotiate(&accept("application/json;q=0.1, */*")),
            Some(MediaType::GraphqlResponseJson)
        );
        assert_eq!(
            MediaType::negotiate(&accept("application/graphql-response+json;q=0, */*")),
            Some(MediaType::Json)
        );
        assert_eq!(MediaType::negotiate(&accept("application/json;q=2")), None);
    }

    #[test]
    fn only_json_in_utf8_is_read() {
        let content_type = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
            is_utf8_json(&headers)
        };
        assert!(content_type("application/json"));
        assert!(content_type("Application/JSON; charset=UTF-8"));
        assert!(content_type("application/json;charset=\"utf-8\""));
        assert!(!content_type("application/json; charset=latin1"));
        assert!(!content_type("application/json; charset=utf-16"));
        assert!(!content_type("text/plain"));
        assert!(!is_utf8_json(&HeaderMap::new()));
    }
}
