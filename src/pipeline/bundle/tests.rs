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

#[test]
fn manifest_numbers_read_back_exactly_what_was_written() {
    // Found by fuzzing (fuzz/, target `manifest`): serde_json's default float parsing is
    // not correctly rounded for long decimals, so 0.955…5 (29 digits) read as x, was
    // written as the shortest text of x, and that text read back as x + 1 ulp. Cargo.toml
    // turns on serde_json's `float_roundtrip`: a manifest we write reads back identical.
    let json = r#"{"schema_version": 2, "model": {"id": "m", "revision": "r", "sha256": "s"},
        "dims": 4, "metric": "cos", "built_at": 0, "examples_sha256": "", "index_sha256": "",
        "hnsw": {"connectivity": 16, "expansion_add": 64, "expansion_search": 32},
        "counts": {}, "keys": [], "scoring": {"buckets": [], "calibration": {
        "temperatures": {"head": 0.8}, "confidence": {"combined": {"a": 6.1, "b": -2.3}},
        "head_weight": 0.5, "knn_softmax_temperature": 0.000000000000005,
        "thresholds": {"combined": {"threshold": 0.41,
            "precision": 0.95555555555555555555555555555, "coverage": 0.8}},
        "target_precision": 0.95, "fitted_on_rows": 120}, "head_sha256": null}}"#;
    let manifest: BundleManifest = serde_json::from_str(json).unwrap();
    let written = serde_json::to_string(&manifest).unwrap();
    let reread: BundleManifest = serde_json::from_str(&written).unwrap();
    assert_eq!(serde_json::to_string(&reread).unwrap(), written);
    assert_eq!(reread.scoring.calibration, manifest.scoring.calibration);
}
