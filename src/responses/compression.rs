//! Compression of answers: which content coding a client accepts, and the
//! bytes in that coding.
//!
//! Pure functions, no I/O: [`Encoding::choose`] reads `Accept-Encoding`
//! (RFC 9110 §12.5.3) and the answer's size, [`Encoding::compress`] turns
//! the answer's bytes into the coded ones, and [`Encoding::set_headers`]
//! says so in the response. The guarantees: a coding the client did not
//! accept (or refused with `q=0`) is never chosen; answers under
//! [`MIN_BYTES`] are sent as they are; every answer that went through here
//! says `Vary: Accept-Encoding`, so a shared cache never hands gzip to a
//! client that cannot read it. A strong `ETag` names one representation
//! (RFC 9110 §8.8.3), so it must be computed on the coded bytes, or be
//! made distinct per coding, by whoever sets it.
use axum::http::{header, HeaderMap, HeaderValue};
use std::io::Write;
use std::sync::OnceLock;

/// Answers shorter than this are sent uncompressed: below about a kilobyte
/// the coding's own framing and the CPU spent gain less than a TCP packet.
pub const MIN_BYTES: usize = 1024;

// Levels for dynamic JSON, compressed once per answer on the request path:
// each is the fast end of its codec's "good ratio" range. Brotli 5 is
// about as fast as gzip 6 with a ratio close to gzip 9 (10-11 are for
// static files compressed once); gzip 6 is zlib's own default; zstd 3 is
// zstd's default, faster than both at a ratio between them.
const BROTLI_QUALITY: i32 = 5;
/// Brotli's window, log2 bytes: 4 MiB, more than any answer we send.
const BROTLI_WINDOW: i32 = 22;
const GZIP_LEVEL: u32 = 6;
const ZSTD_LEVEL: i32 = 3;

/// A content coding we can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The bytes as they are.
    Identity,
    Gzip,
    Brotli,
    Zstd,
}

/// The codings we compress with, in the order preferred when a client
/// accepts several with the same weight: smallest output first.
const PREFERENCE: [Encoding; 3] = [Encoding::Brotli, Encoding::Zstd, Encoding::Gzip];

impl Encoding {
    /// The token in `Accept-Encoding` and `Content-Encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Gzip => "gzip",
            Self::Brotli => "br",
            Self::Zstd => "zstd",
        }
    }

    /// The coding for an answer of `len` bytes to a request with `request`
    /// headers: [`Encoding::negotiate`], except that short answers are
    /// sent as they are.
    pub fn choose(request: &HeaderMap, len: usize) -> Self {
        if len < MIN_BYTES {
            Self::Identity
        } else {
            Self::negotiate(request)
        }
    }

    /// The best coding the request's `Accept-Encoding` allows (RFC 9110
    /// §12.5.3): the highest weight wins, br > zstd > gzip among equals,
    /// and a compressed coding beats `identity` of the same weight. `q=0`
    /// refuses a coding; `*` weighs every coding not named; `identity` is
    /// acceptable unless refused by name or by `*;q=0`, and weighs the
    /// least when neither names it. With no header at
    /// all the answer is not compressed: the RFC would allow any coding,
    /// but clients that send none (curl, scripts) mostly cannot decode one.
    /// When nothing is acceptable, not even identity, the answer is sent as
    /// it is (the RFC's advice; a 406 would only break the client).
    pub fn negotiate(request: &HeaderMap) -> Self {
        let mut values = request.get_all(header::ACCEPT_ENCODING).iter().peekable();
        if values.peek().is_none() {
            return Self::Identity;
        }
        let mut weights = Weights::default();
        for value in values {
            // A value that is not text names nothing we could produce.
            let Ok(value) = value.to_str() else { continue };
            for element in value.split(',') {
                weights.add(element);
            }
        }
        let best = PREFERENCE
            .into_iter()
            .map(|encoding| (encoding, weights.of(encoding)))
            .filter(|&(_, weight)| weight > 0)
            // max_by_key keeps the last of equals; reversed, the first.
            .rev()
            .max_by_key(|&(_, weight)| weight);
        match best {
            Some((encoding, weight)) if weight >= weights.of(Self::Identity) => encoding,
            _ => Self::Identity,
        }
    }

    /// `body` in this coding.
    pub fn compress(self, body: &[u8]) -> Vec<u8> {
        // Writing to a Vec cannot fail, and every codec below accepts any
        // input, so the expects state facts rather than hopes.
        match self {
            Self::Identity => body.to_vec(),
            Self::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(
                    Vec::with_capacity(body.len() / 4),
                    flate2::Compression::new(GZIP_LEVEL),
                );
                encoder.write_all(body).expect("gzip into a Vec");
                encoder.finish().expect("gzip into a Vec")
            }
            Self::Brotli => {
                let params = brotli::enc::BrotliEncoderParams {
                    quality: BROTLI_QUALITY,
                    lgwin: BROTLI_WINDOW,
                    // Lets the encoder size its tables to the answer.
                    size_hint: body.len(),
                    ..Default::default()
                };
                let mut out = Vec::with_capacity(body.len() / 4);
                brotli::BrotliCompress(&mut &body[..], &mut out, &params)
                    .expect("brotli from a slice into a Vec");
                out
            }
            Self::Zstd => zstd::bulk::compress(body, ZSTD_LEVEL).expect("zstd at a valid level"),
        }
    }

    /// Marks a response as coded this way: `Content-Encoding` (none for
    /// identity) and `Accept-Encoding` added to `Vary`. Call it for every
    /// answer that could have been compressed, identity ones included,
    /// and after anything that replaces `Vary` rather than adding to it.
    pub fn set_headers(self, response: &mut HeaderMap) {
        match self.content_encoding() {
            Some(value) => response.insert(header::CONTENT_ENCODING, value),
            None => response.remove(header::CONTENT_ENCODING),
        };
        vary_on_accept_encoding(response);
    }

    /// The `Content-Encoding` value, `None` for identity (which is never
    /// sent as a content coding).
    pub fn content_encoding(self) -> Option<HeaderValue> {
        match self {
            Self::Identity => None,
            other => Some(HeaderValue::from_static(other.as_str())),
        }
    }
}

/// Something's bytes in each compressed coding, each made on its first
/// request and kept, so a hot answer or asset is compressed once per
/// coding, not once per request.
pub struct Coded<T> {
    slots: [OnceLock<T>; 3],
}

impl<T> Coded<T> {
    pub const fn new() -> Self {
        Self {
            slots: [const { OnceLock::new() }; 3],
        }
    }

    /// The slot of `encoding`; `None` for identity, which is the bytes
    /// themselves.
    pub fn slot(&self, encoding: Encoding) -> Option<&OnceLock<T>> {
        let index = match encoding {
            Encoding::Identity => return None,
            Encoding::Gzip => 0,
            Encoding::Brotli => 1,
            Encoding::Zstd => 2,
        };
        Some(&self.slots[index])
    }
}

impl<T> Default for Coded<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Adds `Accept-Encoding` to the response's `Vary`, keeping what is there:
/// a no-op when it is already named or `Vary: *`.
pub fn vary_on_accept_encoding(response: &mut HeaderMap) {
    let already = response.get_all(header::VARY).iter().any(|value| {
        value.to_str().is_ok_and(|value| {
            value.split(',').map(str::trim).any(|name| {
                name == "*" || name.eq_ignore_ascii_case(header::ACCEPT_ENCODING.as_str())
            })
        })
    });
    if !already {
        response.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// The weights one request gives, in thousandths (`q=0.5` is 500).
#[derive(Default)]
struct Weights {
    br: Option<u16>,
    zstd: Option<u16>,
    gzip: Option<u16>,
    identity: Option<u16>,
    any: Option<u16>,
}

impl Weights {
    /// Records one list element, `coding[;q=weight]`. Malformed elements
    /// (a bad weight) are ignored, as if not sent; for a coding named
    /// twice, the first weight counts.
    fn add(&mut self, element: &str) {
        let mut parts = element.split(';');
        let coding = parts.next().unwrap_or("").trim();
        if coding.is_empty() {
            return;
        }
        let mut weight = 1000;
        for parameter in parts {
            let Some((name, value)) = parameter.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("q") {
                match parse_qvalue(value.trim()) {
                    Some(q) => weight = q,
                    None => return,
                }
            }
        }
        let slot = match coding.to_ascii_lowercase().as_str() {
            "br" => &mut self.br,
            "zstd" => &mut self.zstd,
            // RFC 9110 §8.4.1.3: x-gzip is gzip.
            "gzip" | "x-gzip" => &mut self.gzip,
            "identity" => &mut self.identity,
            "*" => &mut self.any,
            _ => return,
        };
        slot.get_or_insert(weight);
    }

    /// The weight of `encoding`: as named, else as `*` gives it, else 0
    /// (not acceptable), except that identity is always acceptable unless
    /// refused: unnamed, it weighs the least, so `gzip;q=0.5` means gzip.
    fn of(&self, encoding: Encoding) -> u16 {
        let named = match encoding {
            Encoding::Brotli => self.br,
            Encoding::Zstd => self.zstd,
            Encoding::Gzip => self.gzip,
            Encoding::Identity => self.identity,
        };
        match (named.or(self.any), encoding) {
            (Some(weight), _) => weight,
            (None, Encoding::Identity) => 1,
            (None, _) => 0,
        }
    }
}

/// A weight as RFC 9110 §12.4.2 writes it: `0` or `1`, optionally with up
/// to three decimals, `1` allowing only zeros. In thousandths.
fn parse_qvalue(text: &str) -> Option<u16> {
    let (whole, decimals) = text.split_once('.').unwrap_or((text, ""));
    if decimals.len() > 3 || !decimals.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fraction = decimals
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |n, digit| n * 10 + u16::from(digit - b'0'));
    match whole {
        "0" => Some(fraction),
        "1" if fraction == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn accept(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn negotiation_follows_rfc_9110() {
        use Encoding::*;
        let table: &[(&[&str], Encoding)] = &[
            (&[], Identity),
            (&[""], Identity),
            (&["gzip"], Gzip),
            (&["x-gzip"], Gzip),
            (&["GZIP"], Gzip),
            (&["zstd"], Zstd),
            (&["br"], Brotli),
            // What browsers send: equal weights, br preferred.
            (&["gzip, deflate, br, zstd"], Brotli),
            (&["gzip, zstd"], Zstd),
            (&["deflate"], Identity),
            (&["compress, deflate"], Identity),
            // Weights decide before preference.
            (&["br;q=0.5, gzip"], Gzip),
            (&["br;q=0.5, gzip;q=0.8, zstd;q=0.9"], Zstd),
            (&["br ; q=0.999 , gzip;Q=1.000"], Gzip),
            (&["gzip;q=0.001"], Gzip),
            // q=0 refuses.
            (&["br;q=0, gzip"], Gzip),
            (&["gzip;q=0"], Identity),
            (&["gzip;q=0.000"], Identity),
            // `*` weighs what is not named.
            (&["*"], Brotli),
            (&["*;q=0.5, gzip"], Gzip),
            (&["*, br;q=0"], Zstd),
            (&["*;q=0"], Identity),
            // Identity preferred by weight, or refused.
            (&["gzip;q=0.5, identity"], Identity),
            (&["gzip;q=0.5, identity;q=0.5"], Gzip),
            (&["identity;q=0, gzip;q=0.1"], Gzip),
            (&["identity;q=0"], Identity),
            (&["*;q=0.5, identity;q=0.6, gzip"], Gzip),
            (&["*;q=0.5, gzip;q=0.4"], Brotli),
            // Malformed weights are ignored as if the element was not sent.
            (&["br;q=2, gzip"], Gzip),
            (&["br;q=1.5, gzip"], Gzip),
            (&["br;q=0.1234, gzip"], Gzip),
            (&["br;q=, gzip"], Gzip),
            (&["br;q=abc"], Identity),
            // Other parameters are ignored.
            (&["br;level=9"], Brotli),
            // The first weight for a coding counts.
            (&["br;q=0, br"], Identity),
            // Several header lines are one list.
            (&["gzip;q=0.5", "zstd"], Zstd),
            (&[" , ,gzip,"], Gzip),
        ];
        for (values, expected) in table {
            assert_eq!(
                Encoding::negotiate(&accept(values)),
                *expected,
                "Accept-Encoding: {values:?}"
            );
        }
    }

    #[test]
    fn a_header_that_is_not_text_names_nothing() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::ACCEPT_ENCODING,
            HeaderValue::from_bytes(b"g\xffzip").unwrap(),
        );
        headers.append(header::ACCEPT_ENCODING, HeaderValue::from_static("zstd"));
        assert_eq!(Encoding::negotiate(&headers), Encoding::Zstd);
    }

    #[test]
    fn short_answers_are_sent_as_they_are() {
        let headers = accept(&["br, gzip, zstd"]);
        assert_eq!(
            Encoding::choose(&headers, MIN_BYTES - 1),
            Encoding::Identity
        );
        assert_eq!(Encoding::choose(&headers, MIN_BYTES), Encoding::Brotli);
        assert_eq!(Encoding::choose(&accept(&[]), 1 << 20), Encoding::Identity);
    }

    /// A page of books as the service answers it: repetitive JSON.
    fn answer() -> Vec<u8> {
        let items: Vec<String> = (0..50)
            .map(|n| {
                format!(
                    r#"{{"id":"0190{n:04}-7c1e-7a3b-9f00-00000000{n:04}","title":"Book number {n}","price":"{n}.50","author":{{"name":"Author {}"}}}}"#,
                    n % 7
                )
            })
            .collect();
        format!(
            r#"{{"data":{{"books":{{"items":[{}]}}}}}}"#,
            items.join(",")
        )
        .into_bytes()
    }

    fn decompress(encoding: Encoding, coded: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match encoding {
            Encoding::Identity => out.extend_from_slice(coded),
            Encoding::Gzip => {
                flate2::read::GzDecoder::new(coded)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Encoding::Brotli => {
                brotli::Decompressor::new(coded, 4096)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Encoding::Zstd => out = zstd::stream::decode_all(coded).unwrap(),
        }
        out
    }

    #[test]
    fn every_coding_round_trips_and_shrinks_json() {
        let body = answer();
        assert!(body.len() > MIN_BYTES);
        for encoding in [
            Encoding::Identity,
            Encoding::Gzip,
            Encoding::Brotli,
            Encoding::Zstd,
        ] {
            let coded = encoding.compress(&body);
            assert_eq!(decompress(encoding, &coded), body, "{encoding:?}");
            if encoding != Encoding::Identity {
                assert!(
                    coded.len() * 4 < body.len(),
                    "{encoding:?}: {} of {} bytes",
                    coded.len(),
                    body.len()
                );
            }
        }
    }

    #[test]
    fn empty_and_binary_bodies_round_trip() {
        let binary: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        for body in [&[][..], &binary[..]] {
            for encoding in PREFERENCE {
                let coded = encoding.compress(body);
                assert_eq!(decompress(encoding, &coded), body, "{encoding:?}");
            }
        }
    }

    #[test]
    fn headers_name_the_coding_and_vary_on_accept_encoding() {
        let mut response = HeaderMap::new();
        response.insert(header::VARY, HeaderValue::from_static("Authorization"));
        Encoding::Brotli.set_headers(&mut response);
        assert_eq!(response[header::CONTENT_ENCODING], "br");
        let vary: Vec<_> = response.get_all(header::VARY).iter().collect();
        assert_eq!(vary, ["Authorization", "Accept-Encoding"]);

        // Twice adds nothing; identity removes a stale Content-Encoding.
        Encoding::Identity.set_headers(&mut response);
        assert!(response.get(header::CONTENT_ENCODING).is_none());
        assert_eq!(response.get_all(header::VARY).iter().count(), 2);

        for already in ["*", "origin, accept-encoding"] {
            let mut response = HeaderMap::new();
            response.insert(header::VARY, HeaderValue::from_static(already));
            vary_on_accept_encoding(&mut response);
            assert_eq!(
                response.get_all(header::VARY).iter().count(),
                1,
                "{already}"
            );
        }
    }
}
