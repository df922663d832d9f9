use super::*;

#[test]
fn segments_list_in_log_order_and_ignore_other_files() {
    let dir = std::env::temp_dir().join(format!("fg-segments-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    for first in [101u64, 1, 20] {
        File::create(segment_path(&dir, first)).unwrap();
    }
    File::create(dir.join("snapshot.json")).unwrap();
    let firsts: Vec<u64> = list_segments(&dir)
        .unwrap()
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    assert_eq!(firsts, vec![1, 20, 101]);
    fs::remove_dir_all(&dir).unwrap();
}
