//! Bundle round trips and the refusals of `disk::load`.

use std::fs;

use super::*;
use crate::types::{ArchetypeId, BucketId};

fn fingerprint(sha: &str) -> ModelFingerprint {
    ModelFingerprint {
        id: "m".into(),
        revision: "r".into(),
        sha256: sha.into(),
        window: None,
    }
}

fn sample() -> Bundle {
    let entries: Vec<IndexEntry> = (0..20)
        .map(|i| IndexEntry {
            id: ArchetypeId::new(&format!("a-{i}")),
            bucket: BucketId::new(if i % 2 == 0 { "even" } else { "odd" }),
            text_sha256: format!("t{i}"),
            embedding: Embedding::normalized(vec![1.0, i as f32, (i * i) as f32 % 7.0]),
        })
        .collect();
    Bundle::build(
        &entries,
        3,
        fingerprint("aa"),
        "ex".into(),
        HnswParams::default(),
    )
    .unwrap()
}

#[test]
fn manifest_round_trip_and_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("index");
    let mut index = sample();
    index.save(&bundle).unwrap();
    let loaded = Bundle::load(&bundle, &fingerprint("aa")).unwrap();
    assert_eq!(loaded.version(), index.version());
    assert_eq!(loaded.manifest().counts.values().sum::<usize>(), 20);
    let q = Embedding::normalized(vec![1.0, 4.0, 2.0]);
    assert_eq!(
        loaded.neighbours(&q, 3).unwrap(),
        index.neighbours(&q, 3).unwrap()
    );
    // Saving again over an existing bundle replaces it.
    index.save(&bundle).unwrap();
    assert!(Bundle::load(&bundle, &fingerprint("aa")).is_ok());
}

#[test]
fn an_empty_index_has_no_neighbours_and_survives_a_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut index = Bundle::build(
        &[],
        3,
        fingerprint("aa"),
        "none".into(),
        HnswParams::default(),
    )
    .unwrap();
    let q = Embedding::normalized(vec![1.0, 0.0, 0.0]);
    assert!(index.neighbours(&q, 5).unwrap().is_empty());
    index.save(&dir.path().join("index")).unwrap();
    let loaded = Bundle::load(&dir.path().join("index"), &fingerprint("aa")).unwrap();
    assert!(loaded.neighbours(&q, 5).unwrap().is_empty());
}

#[test]
fn another_routing_window_is_refused_with_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("index");
    sample().save(&bundle).unwrap();
    let windowed = ModelFingerprint {
        window: Some("head46+tail16".into()),
        ..fingerprint("aa")
    };
    let err = Bundle::load(&bundle, &windowed).err().unwrap().to_string();
    assert!(
        err.contains("routing window full") && err.contains("head46+tail16"),
        "{err}"
    );
    assert_ne!(
        index_version(&windowed, "x"),
        index_version(&fingerprint("aa"), "x")
    );
}

#[test]
fn foreign_model_is_refused_with_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("index");
    sample().save(&bundle).unwrap();
    let err = Bundle::load(&bundle, &fingerprint("bb"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("built with model") && err.contains("router train"),
        "{err}"
    );
}

#[test]
fn corrupt_index_file_is_refused_before_usearch_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("index");
    sample().save(&bundle).unwrap();
    fs::write(bundle.join(INDEX_FILE), b"garbage").unwrap();
    let err = Bundle::load(&bundle, &fingerprint("aa"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("corrupt"), "{err}");
}
