use super::*;

fn strict(jsonl: &str) -> Result<ExampleSet, ArchetypeError> {
    let mut set = ExampleSet::default();
    set.extend_from_jsonl(jsonl, "a.jsonl", Strictness::Archetypes)?;
    Ok(set)
}

#[test]
fn reads_bucket_or_label_and_assigns_stable_ids() {
    let set = strict(
            "{\"text\": \"Sort these\", \"bucket\": \"classification\"}\n\n{\"text\": \"Sum it\", \"label\": \"math\", \"id\": \"m1\"}\n",
        )
        .unwrap();
    assert_eq!(set.len(), 2);
    assert!(set.examples()[0].id.as_str().starts_with("classification-"));
    assert_eq!(set.examples()[1].id.as_str(), "m1");
    let again = strict("{\"text\": \"sort   THESE\", \"bucket\": \"classification\"}").unwrap();
    assert_eq!(again.examples()[0].id, set.examples()[0].id);
}

#[test]
fn strict_rejects_unknown_fields_with_line() {
    let e = strict("{\"text\": \"a\", \"bucket\": \"b\"}\n{\"text\": \"x\", \"buket\": \"b\"}")
        .unwrap_err();
    assert!(
        e.to_string().starts_with("a.jsonl:2:") && e.to_string().contains("buket"),
        "{e}"
    );
}

#[test]
fn dataset_mode_ignores_extra_columns_and_keeps_first_label() {
    let mut set = ExampleSet::default();
    set.extend_from_jsonl(
            "{\"text\": \"a\", \"label\": \"x\", \"split\": \"train\", \"fold\": 3}\n{\"text\": \"A\", \"label\": \"y\"}",
            "d.jsonl",
            Strictness::Dataset,
        )
        .unwrap();
    assert_eq!(set.len(), 1);
    assert_eq!(set.conflicts_skipped, 1);
}

#[test]
fn conflicts_and_empty_text_are_errors_in_strict_mode() {
    let e = strict("{\"text\": \"a\", \"bucket\": \"x\"}\n{\"text\": \"a\", \"bucket\": \"y\"}")
        .unwrap_err();
    assert!(matches!(e, ArchetypeError::Conflict { line: 2, .. }), "{e}");
    let e = strict("{\"text\": \"  \", \"bucket\": \"x\"}").unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    let e = strict("{\"text\": \"a\"}").unwrap_err();
    assert!(e.to_string().contains("missing `bucket`"), "{e}");
}

#[test]
fn exact_repeats_are_dropped_not_errors() {
    let set = strict("{\"text\": \"a\", \"bucket\": \"x\"}\n{\"text\": \"a\", \"bucket\": \"x\"}")
        .unwrap();
    assert_eq!((set.len(), set.duplicates_dropped), (1, 1));
}

#[test]
fn remove_keeps_lookups_consistent() {
    let mut set = strict("{\"text\": \"a\", \"bucket\": \"x\", \"id\": \"1\"}\n{\"text\": \"b\", \"bucket\": \"y\", \"id\": \"2\"}").unwrap();
    assert_eq!(set.remove(&ArchetypeId::new("1")).unwrap().text, "a");
    assert!(set.find_text("A").is_none());
    assert_eq!(set.find_text("B").unwrap().id.as_str(), "2");
    assert!(set.get(&ArchetypeId::new("2")).is_some());
    assert!(set.remove(&ArchetypeId::new("1")).is_none());
}

#[test]
fn content_hash_ignores_order() {
    let a = strict("{\"text\": \"a\", \"bucket\": \"x\"}\n{\"text\": \"b\", \"bucket\": \"y\"}")
        .unwrap();
    let b = strict("{\"text\": \"b\", \"bucket\": \"y\"}\n{\"text\": \"a\", \"bucket\": \"x\"}")
        .unwrap();
    assert_eq!(a.content_sha256(), b.content_sha256());
}
