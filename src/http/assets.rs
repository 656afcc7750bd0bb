//! GraphiQL's scripts and styles, carried in the binary and served under
//! `/graphiql/<package>@<version>/`, so the page works with no internet.
//!
//! The files are vendored from npm (`src/http/assets/README.md` says which
//! and how to update them). A path names one version of one file forever,
//! so browsers may keep it a year without asking again (`immutable`); an
//! update changes the path. Each file is compressed at most once per
//! coding, on its first request, and kept: GraphiQL's bundle is 3.5 MB of
//! text that a browser fetches as about a seventh of that.
use crate::responses::compression::{Coded, Encoding};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One file the page loads.
struct Asset {
    /// Where it is served; the version in it is what makes it immutable.
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    /// The bytes in each compressed coding, made on first demand: the
    /// first is paid once per process, not per request.
    coded: Coded<Vec<u8>>,
}

macro_rules! asset {
    ($package:literal, $file:literal, $content_type:expr) => {
        Asset {
            path: concat!("/graphiql/", $package, "/", $file),
            content_type: $content_type,
            bytes: include_bytes!(concat!("assets/", $package, "/", $file)),
            coded: Coded::new(),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

static ASSETS: [Asset; 7] = [
    asset!("graphiql@3.8.3", "graphiql.min.js", JS),
    asset!("graphiql@3.8.3", "graphiql.min.css", CSS),
    asset!("graphiql@3.8.3", "LICENSE", TEXT),
    asset!("react@18.3.1", "react.production.min.js", JS),
    asset!("react@18.3.1", "LICENSE", TEXT),
    asset!("react-dom@18.3.1", "react-dom.production.min.js", JS),
    asset!("react-dom@18.3.1", "LICENSE", TEXT),
];

/// A year, the most RFC 9111 suggests; the path changes before the file does.
const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// The routes serving every asset (GET and HEAD).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        router.route(
            asset.path,
            get(move |request: HeaderMap| serve(asset, request)),
        )
    })
}

async fn serve(asset: &'static Asset, request: HeaderMap) -> Response {
    let encoding = Encoding::choose(&request, asset.bytes.len());
    let body: &'static [u8] = match asset.coded.slot(encoding) {
        None => asset.bytes,
        Some(slot) => match slot.get() {
            Some(coded) => coded,
            // Compressing megabytes takes a while: off the async workers.
            None => match tokio::task::spawn_blocking(move || {
                slot.get_or_init(|| encoding.compress(asset.bytes))
                    .as_slice()
            })
            .await
            {
                Ok(coded) => coded,
                // Only a panic in the codec lands here; the plain bytes
                // are still a right answer.
                Err(_) => return plain(asset),
            },
        },
    };
    let mut response = Body::from(body).into_response();
    set_headers(asset, response.headers_mut());
    encoding.set_headers(response.headers_mut());
    response
}

fn plain(asset: &'static Asset) -> Response {
    let mut response = Body::from(asset.bytes).into_response();
    set_headers(asset, response.headers_mut());
    Encoding::Identity.set_headers(response.headers_mut());
    response
}

fn set_headers(asset: &Asset, headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    // A script must run as a script only if it says it is one.
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = include_str!("graphiql.html");

    /// Every local path the page loads, from its `src` and `href`.
    fn loaded_by_page() -> Vec<&'static str> {
        PAGE.split(['"', '\''])
            .filter(|part| part.starts_with("/graphiql/"))
            .collect()
    }

    #[test]
    fn the_page_loads_only_served_assets_and_every_script_and_style() {
        let loaded = loaded_by_page();
        for path in &loaded {
            assert!(
                ASSETS.iter().any(|asset| asset.path == *path),
                "graphiql.html loads {path}, which is not served"
            );
        }
        for asset in ASSETS.iter().filter(|asset| asset.content_type != TEXT) {
            assert!(
                loaded.contains(&asset.path),
                "{} is served but graphiql.html does not load it",
                asset.path
            );
        }
    }

    #[test]
    fn the_page_names_nothing_outside_this_server() {
        for scheme in ["http:", "https:"] {
            assert!(
                !PAGE.contains(scheme),
                "graphiql.html names {scheme} addresses"
            );
        }
        for attribute in ["src=", "href=", "url("] {
            for value in PAGE.split(attribute).skip(1) {
                let value = value.trim_start_matches(['"', '\'']);
                assert!(
                    value.starts_with("/graphiql/"),
                    "graphiql.html loads {attribute}{value:.40}"
                );
            }
        }
    }

    #[test]
    fn every_asset_is_versioned_and_licensed() {
        for asset in &ASSETS {
            let package = asset.path.split('/').nth(2).expect("a package dir");
            assert!(package.contains('@'), "{} has no version", asset.path);
            let licence = format!("/graphiql/{package}/LICENSE");
            assert!(
                ASSETS.iter().any(|other| other.path == licence),
                "{} is served without its licence",
                asset.path
            );
        }
    }
}
