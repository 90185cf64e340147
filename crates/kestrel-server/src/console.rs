//! The web console: static files compiled into the binary and served at `/`, and the OpenAPI
//! document of the public API at `/v1/openapi.json`.
//!
//! The console is plain ES modules with no build step, so `cargo build` alone yields a complete
//! binary and nothing is fetched from the network at run time. The files hold no data and need
//! no token; every piece of data the console shows comes from the token-protected public API.
//! A table of `include_bytes!` is all this needs: a dozen files do not justify an embedding crate.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One embedded file: its path under `/console/`, its media type and its bytes.
struct Asset {
    path: &'static str,
    media_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $media_type:expr) => {
        Asset {
            path: $path,
            media_type: $media_type,
            bytes: include_bytes!(concat!("../assets/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the console. A new file under `assets/` must be listed here.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("charts.js", JS),
    asset!("dom.js", JS),
    asset!("nav.js", JS),
    asset!("sql.js", JS),
    asset!("time.js", JS),
    asset!("pages/overview.js", JS),
    asset!("pages/alerts.js", JS),
    asset!("pages/search.js", JS),
    asset!("pages/entities.js", JS),
    asset!("pages/rules.js", JS),
    asset!("vendor/uplot/uPlot.esm.js", JS),
    asset!("vendor/uplot/uPlot.min.css", "text/css; charset=utf-8"),
];

/// The OpenAPI 3 document of the public REST API, written by hand beside the routes.
pub const OPENAPI_JSON: &str = include_str!("../assets/openapi.json");

/// Scripts, styles and images only from this server; no framing by other sites; no inline
/// scripts. uPlot sets element styles, hence `'unsafe-inline'` for styles only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn serve(asset: &Asset) -> Response {
    let mut resp = (
        [(header::CONTENT_TYPE, asset.media_type)],
        asset.bytes.to_vec(),
    )
        .into_response();
    let headers = resp.headers_mut();
    // The files change with the binary: browsers revalidate instead of serving a stale console.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// `GET /`: the console's page.
pub async fn index() -> Response {
    serve(find("index.html").expect("index.html is embedded"))
}

/// `GET /console/{*path}`: one of the console's files.
pub async fn file(Path(path): Path<String>) -> Response {
    match find(&path) {
        Some(a) => serve(a),
        None => (StatusCode::NOT_FOUND, "no such console file\n").into_response(),
    }
}

/// `GET /v1/openapi.json`.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_reachable_and_the_openapi_document_parses() {
        for a in ASSETS {
            assert!(!a.bytes.is_empty(), "{} is empty", a.path);
            assert!(find(a.path).is_some());
        }
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).expect("valid JSON");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        assert!(doc["paths"]["/v1/query"]["post"].is_object());
    }

    #[test]
    fn every_module_the_console_imports_is_embedded() {
        // A relative import of a file missing from ASSETS would break the console at run time.
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(a.bytes).expect("utf-8");
            let dir = a.path.rsplit_once('/').map_or("", |(d, _)| d);
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let Some(spec) = line.split(['"', '\'']).nth(1) else {
                    continue;
                };
                let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
                for seg in spec.split('/') {
                    match seg {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s),
                    }
                }
                let target = parts.join("/");
                assert!(
                    find(&target).is_some(),
                    "{} imports {spec} ({target}), which is not embedded",
                    a.path
                );
            }
        }
    }
}
