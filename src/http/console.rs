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
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_found_by_name_and_the_page_by_the_empty_name() {
        for asset in &ASSETS {
            assert!(!asset.bytes.is_empty(), "{} is empty", asset.name);
            assert_eq!(find(asset.name).map(|found| found.name), Some(asset.name));
        }
        assert_eq!(find("").map(|asset| asset.name), Some("index.html"));
        assert!(find("missing.js").is_none());
        assert!(find("../Cargo.toml").is_none());
    }

    #[test]
    fn the_page_loads_only_its_own_assets_and_has_no_inline_script() {
        let page = std::str::from_utf8(find("").unwrap().bytes).unwrap();
        assert!(page.contains(r#"<script src="app.js" defer></script>"#));
        assert!(page.contains(r#"href="console.css""#));
        assert_eq!(page.matches("<script").count(), 1, "one script, app.js");
        assert!(!page.contains(" style="), "no inline styles under the CSP");
        assert!(!page.contains("http://") && !page.contains("https://"));
        let script = std::str::from_utf8(find("app.js").unwrap().bytes).unwrap();
        assert!(!script.contains("http://") && !script.contains("https://"));
        assert!(
            !script.contains("new EventSource"),
            "the token never goes in a URL"
        );
    }

    #[test]
    fn assets_carry_their_type_the_policy_and_no_cache() {
        let response = asset("app.js").unwrap();
        let headers = response.headers();
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(policy.starts_with("default-src 'self'"));
        assert!(!policy.contains("unsafe-inline"));
        let Err(error) = asset("nothing.js") else {
            panic!("an unknown asset is an error");
        };
        assert_eq!(error.status, StatusCode::NOT_FOUND);
        assert_eq!(redirect().headers()[header::LOCATION], "/console/");
    }
}
