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
