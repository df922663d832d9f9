use super::*;
use crate::sale::{Event, ItemSpec, SaleSpec};

#[test]
fn replay_into_names_the_record_the_engine_refuses() {
    let dir = std::env::temp_dir().join(format!("fg-replay-into-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let created = Event::SaleCreated {
        at: 1,
        sale: SaleSpec {
            sale_id: "s1".into(),
            title: "t".into(),
            starts_at: None,
            ends_at: None,
            hold_seconds: 60,
            items: vec![ItemSpec {
                sku_id: "k1".into(),
                title: "i".into(),
                price: "1.00".parse().unwrap(),
                stock: 5,
                per_user_limit: 1,
            }],
        },
    };
    let refused = Event::ItemRestocked {
        at: 2,
        sale_id: "s1".into(),
        sku_id: "k1".into(),
        add: 0,
    };
    let mut bytes = Vec::new();
    for (seq, event) in [(1, &created), (2, &refused)] {
        journal::record::encode(seq, &serde_json::to_vec(event).unwrap(), &mut bytes);
    }
    std::fs::write(journal::segment::segment_path(&dir, 1), &bytes).unwrap();
    let engine = Engine::new(engine_limits(&Config::default()), 0);
    let error = replay_into(&engine, &dir, 0, 1 << 20)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("journal record 2 cannot be replayed"),
        "{error}"
    );
    assert_eq!(
        engine.sale("s1").unwrap().id(),
        "s1",
        "records before it were applied"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
