use super::*;

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let shipped = dir.path().join("examples");
    std::fs::create_dir_all(&shipped).unwrap();
    std::fs::write(
        shipped.join("a.jsonl"),
        "{\"id\": \"code-1\", \"bucket\": \"code\", \"text\": \"write a parser\"}\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    (dir, shipped, data)
}

fn buckets() -> BTreeSet<BucketId> {
    ["code", "chat"].iter().map(|b| BucketId::new(b)).collect()
}

fn new(text: &str, bucket: &str) -> NewExample {
    NewExample {
        text: text.into(),
        bucket: bucket.into(),
        id: None,
        tenant: None,
    }
}

#[test]
fn added_examples_survive_reopening() {
    let (_dir, shipped, data) = setup();
    let mut store = ArchetypeStore::open(&shipped, &data).unwrap();
    let out = store
        .add(&[new("hello there", "chat")], &buckets())
        .unwrap();
    assert!(out[0].created);
    let reopened = ArchetypeStore::open(&shipped, &data).unwrap();
    assert_eq!(reopened.examples().len(), 2);
    assert_eq!(
        reopened.examples().get(&out[0].id).unwrap().text,
        "hello there"
    );
}

#[test]
fn same_text_same_bucket_is_idempotent_other_bucket_conflicts() {
    let (_dir, shipped, data) = setup();
    let mut store = ArchetypeStore::open(&shipped, &data).unwrap();
    let again = store
        .add(&[new("Write a  parser", "code")], &buckets())
        .unwrap();
    assert_eq!((again[0].id.as_str(), again[0].created), ("code-1", false));
    let err = store
        .add(&[new("write a parser", "chat")], &buckets())
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("code-1"));
}

#[test]
fn a_bad_item_rejects_the_whole_batch() {
    let (_dir, shipped, data) = setup();
    let mut store = ArchetypeStore::open(&shipped, &data).unwrap();
    let err = store
        .add(&[new("fine", "chat"), new("x", "poetry")], &buckets())
        .unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownBucket { index: 1, .. }),
        "{err}"
    );
    assert_eq!(store.examples().len(), 1);
    assert!(!data.join(JOURNAL_FILE).exists());
    let err = store.add(&[new("  ", "chat")], &buckets()).unwrap_err();
    assert!(matches!(err, StoreError::Invalid { index: 0, .. }), "{err}");
}

#[test]
fn only_changed_examples_ask_for_a_rebuild() {
    let (_dir, shipped, data) = setup();
    let mut store = ArchetypeStore::open(&shipped, &data).unwrap();
    assert!(
        !store.take_unbuilt(),
        "the index at start is built from what was read"
    );
    store
        .add(&[new("hello there", "chat")], &buckets())
        .unwrap();
    assert!(store.take_unbuilt());
    assert!(!store.take_unbuilt(), "asked once");
    store
        .add(&[new("hello there", "chat")], &buckets())
        .unwrap();
    assert!(!store.take_unbuilt(), "an idempotent write changes nothing");
    assert!(store
        .add(&[new("hello there", "code")], &buckets())
        .is_err());
    assert!(!store.take_unbuilt(), "nor does a refused one");
    store.delete(&ArchetypeId::new("code-1"), None).unwrap();
    assert!(store.take_unbuilt());
}

#[test]
fn deletes_are_durable_and_unknown_ids_are_404() {
    let (_dir, shipped, data) = setup();
    let mut store = ArchetypeStore::open(&shipped, &data).unwrap();
    store.delete(&ArchetypeId::new("code-1"), None).unwrap();
    assert!(matches!(
        store.delete(&ArchetypeId::new("code-1"), None),
        Err(StoreError::NotFound(_))
    ));
    assert!(ArchetypeStore::open(&shipped, &data)
        .unwrap()
        .examples()
        .is_empty());
}

#[test]
fn a_torn_last_line_is_ignored_but_earlier_corruption_is_an_error() {
    let (_dir, shipped, data) = setup();
    std::fs::create_dir_all(&data).unwrap();
    let good = serde_json::to_string(&JournalEntry::Add {
        id: "c2".into(),
        bucket: "chat".into(),
        text: "hi".into(),
        tenant: None,
    })
    .unwrap();
    std::fs::write(
        data.join(JOURNAL_FILE),
        format!("{good}\n{{\"op\": \"add\", \"id\": \"c3\", \"buc"),
    )
    .unwrap();
    let mut store = ArchetypeStore::open(&shipped, &data).unwrap();
    assert_eq!(store.examples().len(), 2);
    // The torn tail is cut off, so a later append stays readable.
    store
        .add(&[new("good evening", "chat")], &buckets())
        .unwrap();
    assert_eq!(
        ArchetypeStore::open(&shipped, &data)
            .unwrap()
            .examples()
            .len(),
        3
    );
    std::fs::write(data.join(JOURNAL_FILE), format!("garbage\n{good}\n")).unwrap();
    let err = ArchetypeStore::open(&shipped, &data).err().unwrap();
    assert!(err.to_string().contains(":1:"), "{err}");
}
