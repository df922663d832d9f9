//! The host console: `GET /console/` and its assets, embedded in the binary.
//!
//! The files under `src/http/console/` are the build output: plain HTML,
//! CSS and JavaScript, no bundler and nothing fetched from outside the
//! machine. They are compiled in with `include_bytes!`, so a gateway serves
//! the console of its own version and needs no file on disk. Every answer
//! carries a strict Content-Security-Policy (scripts and styles from this
//! origin only, no inline script) and `Cache-Control: no-cache`, so a
//! restarted gateway's console replaces the old one at the next load.

use crate::http::body::{bytes_response, ResponseBody};
use crate::http::error::ApiError;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

/// One embedded file, served as `/console/{name}`.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

/// Every file of the console; `/console/` serves `index.html`.
pub const ASSETS: [Asset; 4] = [
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("console/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("console/app.js"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("console/console.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("console/icon.svg"),
    },
];

/// Same origin only, no inline script or style, no framing, no plugins;
/// `connect-src 'self'` is what the page's `fetch()` calls need.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The asset a path below `/console/` names: the empty name is the page.
pub fn find(name: &str) -> Option<&'static Asset> {
    let name = if name.is_empty() { "index.html" } else { name };
    ASSETS.iter().find(|asset| asset.name == name)
}

/// `GET /console/{name}`: the asset, or 404 JSON.
pub fn asset(name: &str) -> Result<Response<ResponseBody>, ApiError> {
    let asset =
        find(name).ok_or_else(|| ApiError::not_found(format!("no console asset `{name}`")))?;
    let mut response = bytes_response(
        StatusCode::OK,
        asset.content_type,
        Bytes::from_static(asset.bytes),
    );
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(response)
}

/// `GET /console`: 308 to `/console/`, so the page's relative asset paths
/// resolve below it.
pub fn redirect() -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Full(None));
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/console/"));
    response
}

#[cfg(test)]
#[path = "console_tests.rs"]
mod tests;
