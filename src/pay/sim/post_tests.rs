use super::*;

#[tokio::test]
async fn unreachable_and_unsupported_urls_are_connection_errors() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let closed = format!("http://127.0.0.1:{port}/notify");
    let timeout = Duration::from_secs(5);
    let outcome = post(&closed, &[], Bytes::new(), timeout).await;
    assert!(
        matches!(outcome, PostOutcome::ConnectionError(_)),
        "{outcome:?}"
    );
    let https = post("https://127.0.0.1:1/notify", &[], Bytes::new(), timeout).await;
    assert!(matches!(https, PostOutcome::ConnectionError(message) if message.contains("http://")));
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    let outcome = post(
        &url,
        &[],
        Bytes::from_static(b"{}"),
        Duration::from_millis(100),
    )
    .await;
    assert_eq!(outcome, PostOutcome::Timeout);
    drop(listener);
}
