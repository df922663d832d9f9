#[test]
fn kept_handles_count_into_the_same_series_from_every_thread() {
    let route: &'static str = "/test/kept-handles";
    super::count_request(route, "201");
    super::count_request(route, "201");
    std::thread::spawn(move || super::count_request(route, "201"))
        .join()
        .unwrap();
    // Equal text at another address: the same series.
    let same_route: &'static str = String::from(route).leak();
    super::count_request(same_route, "201");
    super::count_request(route, "409");
    let text = super::handle().render();
    let value = |status: &str| {
        text.lines()
            .find(|line| {
                line.starts_with("flashgate_http_requests_total{")
                    && line.contains(&format!("route=\"{route}\""))
                    && line.contains(&format!("status=\"{status}\""))
            })
            .and_then(|line| line.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(value("201").as_deref(), Some("4"), "{text}");
    assert_eq!(value("409").as_deref(), Some("1"), "{text}");
}
