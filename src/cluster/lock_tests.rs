use super::*;

#[test]
fn one_holder_at_a_time_and_released_on_drop() {
    let dir = std::env::temp_dir().join(format!("fg-cluster-lock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let held = DataDirLock::acquire(&dir).unwrap();
    let refused = DataDirLock::acquire(&dir).err().expect("locked");
    assert!(refused.contains("is locked"), "{refused}");
    drop(held);
    DataDirLock::acquire(&dir).expect("free again");
    std::fs::remove_dir_all(&dir).unwrap();
}
