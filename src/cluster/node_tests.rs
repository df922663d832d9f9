use super::*;

#[test]
fn a_block_lasts_about_the_horizon_at_the_sell_rate_within_its_bounds() {
    assert_eq!(
        block_size(None, 20, 100),
        100,
        "the first lease: the ceiling"
    );
    assert_eq!(block_size(Some(30.0), 20, 100), 60, "30/s for 2 s");
    assert_eq!(block_size(Some(10_000.0), 20, 100), 100, "capped");
    assert_eq!(
        block_size(Some(0.0), 20, 100),
        21,
        "idle: just above the watermark"
    );
    assert_eq!(block_size(Some(0.2), 0, 5), 1);
    assert_eq!(
        block_size(Some(3.0), 9, 5),
        5,
        "the ceiling wins over the floor"
    );
}

#[test]
fn every_state_is_reached_by_the_table_or_not_at_all() {
    use SaleStatus::*;
    for from in [Scheduled, Live, Paused, Ended] {
        for to in [Scheduled, Live, Paused, Ended] {
            let mut status = from;
            for action in path(from, to) {
                status = status.next(*action).unwrap();
            }
            let reachable = from == to || (from != Ended && to != Scheduled);
            assert_eq!(status == to, reachable, "{from:?} -> {to:?}");
        }
    }
}
