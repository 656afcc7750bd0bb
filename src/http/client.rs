//! Who sent a request: the TCP peer, or behind a load balancer the
//! rightmost address of the header it writes (`--client-address-header`).
//! The rightmost, because a client can put anything at the left of
//! `X-Forwarded-For` and the balancer appends the address it saw.
use axum::http::{HeaderMap, HeaderName};
use std::net::{IpAddr, SocketAddr};

/// The client's address: `header`'s rightmost address when configured and
/// present, the peer's otherwise (a request that reached the service
/// without passing the balancer).
pub fn address(peer: SocketAddr, headers: &HeaderMap, header: Option<&HeaderName>) -> IpAddr {
    header
        .and_then(|header| headers.get_all(header).iter().next_back())
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .and_then(parse)
        .unwrap_or_else(|| peer.ip())
}

/// An address as balancers write it: `192.0.2.1`, `2001:db8::1`, or with a
/// port, `192.0.2.1:443` and `[2001:db8::1]:443`.
fn parse(value: &str) -> Option<IpAddr> {
    let value = value.trim();
    value
        .parse::<IpAddr>()
        .ok()
        .or_else(|| value.parse::<SocketAddr>().ok().map(|address| address.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn the_rightmost_forwarded_address_counts_only_when_configured() {
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let forwarded = HeaderName::from_static("x-forwarded-for");
        let spoofed = headers(&["203.0.113.1, 198.51.100.2"]);
        assert_eq!(address(peer, &spoofed, None), peer.ip());
        assert_eq!(
            address(peer, &spoofed, Some(&forwarded)).to_string(),
            "198.51.100.2"
        );
        let two_lines = headers(&["203.0.113.1", "[2001:db8::1]:443"]);
        assert_eq!(
            address(peer, &two_lines, Some(&forwarded)).to_string(),
            "2001:db8::1"
        );
        for garbage in [headers(&["not an address"]), HeaderMap::new()] {
            assert_eq!(address(peer, &garbage, Some(&forwarded)), peer.ip());
        }
    }
}
