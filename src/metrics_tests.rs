#[test]
fn kept_handles_count_into_the_same_series_from_every_thread() {
    let route: &'static str = "/test/kept-handles";
    super::record_request(route, "201", 0.001);
    super::record_request(route, "201", 0.001);
    std::thread::spawn(move || super::record_request(route, "201", 0.001))
        .join()
        .unwrap();
    // Equal text at another address: the same series.
    let same_route: &'static str = String::from(route).leak();
    super::record_request(same_route, "201", 0.001);
    super::record_request(route, "409", 0.001);
    let text = super::render();
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

/// The value of the one sample line starting `prefix` and containing `label`.
fn sample(text: &str, prefix: &str, label: &str) -> Option<String> {
    text.lines()
        .find(|line| line.starts_with(prefix) && line.contains(label))
        .and_then(|line| line.rsplit(' ').next())
        .map(str::to_owned)
}

#[test]
fn a_scrape_counts_every_event_before_it_however_few_or_many() {
    let route: &'static str = "/test/tallies";
    let outcome: &'static str = "test_tallied";
    // Fewer than a thread keeps before handing its tally over, then more.
    for _ in 0..3 {
        super::record_request(route, "201", 0.002);
    }
    let label = format!("route=\"{route}\"");
    let timed = || {
        let text = super::render();
        let count = sample(
            &text,
            "flashgate_http_request_duration_seconds_count{",
            &label,
        );
        (count, text)
    };
    let (count, text) = timed();
    assert_eq!(count.as_deref(), Some("3"), "{text}");
    let many = 2 * super::hot::TALLY_EVENTS_MAX + 5;
    for _ in 0..many {
        super::count_reservation(outcome);
    }
    std::thread::spawn(move || super::count_reservation(outcome))
        .join()
        .unwrap();
    let text = super::render();
    assert_eq!(
        sample(
            &text,
            "flashgate_reservations_total{",
            &format!("outcome=\"{outcome}\"")
        ),
        Some((many + 1).to_string()),
        "{text}"
    );
    // Handed over once: a second scrape counts nothing twice.
    super::record_request(route, "201", 0.002);
    let (count, text) = timed();
    assert_eq!(count.as_deref(), Some("4"), "{text}");
}
