use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_are_valid() {
    let config = Config::load_from(None, env(&[])).unwrap();
    assert_eq!(config.server.body_bytes_max, 16384);
    assert!(config.uses_dev_credentials());
}

#[test]
fn the_documented_config_file_matches_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flashgate.toml");
    let from_file = Config::load_from(Some(&path), env(&[])).unwrap();
    let from_file = toml::Value::try_from(from_file).unwrap();
    assert_eq!(from_file, toml::Value::try_from(Config::default()).unwrap());
}

#[test]
fn environment_overrides_every_kind_of_key() {
    let config = Config::load_from(
        None,
        env(&[
            ("FLASHGATE__SERVER__LISTEN", "0.0.0.0:9000"),
            ("FLASHGATE__SERVER__REQUESTS_IN_FLIGHT_MAX", "7"),
            ("FLASHGATE__STORAGE__DATA_DIR", "/tmp/fg"),
            (
                "FLASHGATE__AUTH__SESSION_SECRET",
                "0123456789abcdef0123456789abcdef",
            ),
            (
                "FLASHGATE__AUTH__ADMIN_TOKENS",
                "host:host-token-0001, ops:ops-token-00002",
            ),
            ("UNRELATED", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(config.server.listen, "0.0.0.0:9000");
    assert_eq!(config.server.requests_in_flight_max, 7);
    assert_eq!(config.storage.data_dir, PathBuf::from("/tmp/fg"));
    assert_eq!(
        config.auth.admin_tokens,
        vec!["host:host-token-0001", "ops:ops-token-00002"]
    );
    assert!(!config.uses_dev_credentials());
}

#[test]
fn bad_values_name_the_key() {
    let error = Config::load_from(None, env(&[("FLASHGATE__SERVER__LISTEN", "nowhere")]))
        .unwrap_err()
        .to_string();
    assert!(error.contains("server.listen"), "{error}");
    let error = Config::load_from(None, env(&[("FLASHGATE__SERVER__WORKERS", "many")]))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("FLASHGATE__SERVER__WORKERS") && error.contains("integer"),
        "{error}"
    );
    let error = Config::load_from(None, env(&[("FLASHGATE__SERVER__NOPE", "1")]))
        .unwrap_err()
        .to_string();
    assert!(error.contains("server.nope"), "{error}");
    let error = Config::load_from(None, env(&[("FLASHGATE__AUTH__ADMIN_TOKENS", "king:x")]))
        .unwrap_err()
        .to_string();
    assert!(error.contains("auth.admin_tokens"), "{error}");
    let error = Config::load_from(
        None,
        env(&[("FLASHGATE__STORAGE__STORE_DEFER_SECONDS", "60")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("storage.store_defer_seconds") && error.contains("store_lag_seconds_max"),
        "{error}"
    );
    let error = Config::load_from(
        None,
        env(&[("FLASHGATE__STORAGE__COMMIT_GATHER_US", "10001")]),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("storage.commit_gather_us"), "{error}");
    let gathering = Config::load_from(
        None,
        env(&[("FLASHGATE__STORAGE__COMMIT_GATHER_US", "10000")]),
    )
    .expect("10 ms is the largest wait allowed");
    assert_eq!(gathering.storage.commit_gather_us, 10_000);
    let policy = ("FLASHGATE__STORAGE__JOURNAL_WRITER_POLICY", "fifo");
    let error = Config::load_from(None, env(&[policy]))
        .expect_err("only batch and normal are policies")
        .to_string();
    assert!(
        error.contains("journal_writer_policy") && error.contains("batch"),
        "{error}"
    );
    let policy = ("FLASHGATE__STORAGE__JOURNAL_WRITER_POLICY", "normal");
    let normal = Config::load_from(None, env(&[policy])).expect("normal is a policy");
    assert_eq!(normal.storage.journal_writer_policy, ThreadPolicy::Normal);
}

#[test]
fn merchant_credentials_are_all_or_nothing() {
    let config = Config::load_from(None, env(&[])).unwrap();
    assert!(!config.pay.has_merchant(), "the default runs the simulator");
    let error = Config::load_from(None, env(&[("FLASHGATE__PAY__MCHID", "1900000001")]))
        .unwrap_err()
        .to_string();
    assert!(error.contains("pay.appid"), "{error}");
    let complete = [
        ("FLASHGATE__PAY__MCHID", "1900000001"),
        ("FLASHGATE__PAY__APPID", "wx0000000000000001"),
        (
            "FLASHGATE__PAY__MERCHANT_SERIAL_NO",
            "5F1C72E2A8931B72A2E13AF8DEE92471EB397115",
        ),
        (
            "FLASHGATE__PAY__MERCHANT_PRIVATE_KEY_FILE",
            "/etc/flashgate/apiclient_key.pem",
        ),
        (
            "FLASHGATE__PAY__WECHATPAY_PUBLIC_KEY_FILE",
            "/etc/flashgate/wxp_pub.pem",
        ),
        (
            "FLASHGATE__PAY__WECHATPAY_PUBLIC_KEY_ID",
            "PUB_KEY_ID_0000000000000024101100397200000006",
        ),
        (
            "FLASHGATE__PAY__APIV3_KEY",
            "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb",
        ),
        (
            "FLASHGATE__PAY__NOTIFY_URL",
            "https://shop.example.com/v1/payments/wechat/notify",
        ),
    ];
    let config = Config::load_from(None, env(&complete)).unwrap();
    assert!(config.pay.has_merchant());
    let mut short_key = env(&complete);
    short_key.push(("FLASHGATE__PAY__APIV3_KEY".into(), "short".into()));
    let error = Config::load_from(None, short_key).unwrap_err().to_string();
    assert!(error.contains("pay.apiv3_key"), "{error}");
    let mut query = env(&complete);
    query.push((
        "FLASHGATE__PAY__NOTIFY_URL".into(),
        "https://x.example/n?a=1".into(),
    ));
    let error = Config::load_from(None, query).unwrap_err().to_string();
    assert!(error.contains("pay.notify_url"), "{error}");
}

#[test]
fn cluster_needs_a_node_id_with_a_redis_url_and_nothing_without() {
    let config = Config::load_from(None, env(&[])).unwrap();
    assert!(!config.cluster.enabled(), "the default runs alone");
    let refused = |pairs: &[(&str, &str)], key: &str| {
        let error = Config::load_from(None, env(pairs)).unwrap_err().to_string();
        assert!(error.contains(key), "{pairs:?}: {error}");
    };
    let url = ("FLASHGATE__CLUSTER__REDIS_URL", "redis://127.0.0.1:6379");
    refused(&[url], "cluster.node_id");
    refused(
        &[url, ("FLASHGATE__CLUSTER__NODE_ID", "has space")],
        "cluster.node_id",
    );
    refused(&[("FLASHGATE__CLUSTER__NODE_ID", "n1")], "cluster.node_id");
    let node = ("FLASHGATE__CLUSTER__NODE_ID", "node-1");
    refused(
        &[("FLASHGATE__CLUSTER__REDIS_URL", "http://x"), node],
        "cluster.redis_url",
    );
    refused(
        &[url, node, ("FLASHGATE__CLUSTER__KEY_PREFIX", "a b")],
        "cluster.key_prefix",
    );
    refused(
        &[url, node, ("FLASHGATE__CLUSTER__LEASE_BLOCK_UNITS", "0")],
        "cluster.lease_block_units",
    );
    refused(
        &[
            url,
            node,
            ("FLASHGATE__CLUSTER__LEASE_LOW_WATERMARK_UNITS", "100"),
        ],
        "cluster.lease_low_watermark_units",
    );
    let config = Config::load_from(None, env(&[url, node])).unwrap();
    assert!(config.cluster.enabled());
    assert_eq!(config.cluster.node_id, "node-1");
    assert_eq!(config.cluster.redis_mode, RedisMode::Single);
}

#[test]
fn a_redis_cluster_is_named_by_its_seed_nodes_and_one_redis_by_one_url() {
    let node = ("FLASHGATE__CLUSTER__NODE_ID", "node-1");
    let seeds = (
        "FLASHGATE__CLUSTER__REDIS_URL",
        "redis://10.0.0.1:7000, redis://10.0.0.2:7000,redis://10.0.0.3:7000",
    );
    let cluster = ("FLASHGATE__CLUSTER__REDIS_MODE", "cluster");
    let error = Config::load_from(None, env(&[seeds, node]))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("cluster.redis_url") && error.contains("redis_mode"),
        "several URLs without the cluster mode: {error}"
    );
    let config = Config::load_from(None, env(&[seeds, node, cluster])).unwrap();
    assert_eq!(config.cluster.redis_mode, RedisMode::Cluster);
    assert_eq!(
        config.cluster.redis_urls(),
        [
            "redis://10.0.0.1:7000",
            "redis://10.0.0.2:7000",
            "redis://10.0.0.3:7000"
        ]
    );
    let one_seed = ("FLASHGATE__CLUSTER__REDIS_URL", "redis://10.0.0.1:7000");
    assert!(Config::load_from(None, env(&[one_seed, node, cluster])).is_ok());
    let bad_seed = (
        "FLASHGATE__CLUSTER__REDIS_URL",
        "redis://10.0.0.1:7000,10.0.0.2:7000",
    );
    let error = Config::load_from(None, env(&[bad_seed, node, cluster]))
        .unwrap_err()
        .to_string();
    assert!(error.contains("`10.0.0.2:7000`"), "{error}");
    let commas = ("FLASHGATE__CLUSTER__REDIS_URL", " , ");
    let error = Config::load_from(None, env(&[commas, node, cluster]))
        .unwrap_err()
        .to_string();
    assert!(error.contains("seed nodes"), "{error}");
    let error = Config::load_from(None, env(&[cluster]))
        .unwrap_err()
        .to_string();
    assert!(error.contains("cluster.redis_mode"), "{error}");
    let error = Config::load_from(None, env(&[("FLASHGATE__CLUSTER__REDIS_MODE", "sentinel")]))
        .unwrap_err()
        .to_string();
    assert!(error.contains("redis_mode"), "{error}");
}

#[test]
fn unknown_and_mistyped_file_keys_name_the_key() {
    let dir = std::env::temp_dir().join(format!("fg-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[server]\nlisten_port = 1\n").unwrap();
    let error = Config::load_from(Some(&path), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(error.contains("server.listen_port"), "{error}");
    std::fs::write(&path, "[inventory]\nshards = \"many\"\n").unwrap();
    let error = Config::load_from(Some(&path), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(error.contains("inventory.shards"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}
