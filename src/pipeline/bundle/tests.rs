//! Bundle round trips and the refusals of `disk::load`.

use std::fs;
use std::path::Path;

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
    fs::write(current_dir(&bundle).unwrap().join(INDEX_FILE), b"garbage").unwrap();
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

/// The entries of `dir`, sorted, for asserting what a save left behind.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_save_moves_the_pointer_and_keeps_one_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("index");
    let mut index = sample();
    for _ in 0..3 {
        index.save(&bundle).unwrap();
    }
    assert_eq!(entries(&bundle), ["CURRENT", "v-000002", "v-000003"]);
    assert_eq!(
        fs::read_to_string(bundle.join(layout::POINTER_FILE)).unwrap(),
        "v-000003\n"
    );
    assert_eq!(current_dir(&bundle).unwrap(), bundle.join("v-000003"));
    assert!(Bundle::load(&bundle, &fingerprint("aa")).is_ok());
}

#[test]
fn what_a_crashed_save_left_is_ignored_and_cleaned_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("index");
    let mut index = sample();
    index.save(&bundle).unwrap();
    // A crash mid-write: a staging directory, a pointer temp file, and a version directory
    // without its manifest (never written by a save, but a half-copied one must not win).
    fs::create_dir(bundle.join(".tmp-crashed")).unwrap();
    fs::write(bundle.join(".tmp-crashed").join(INDEX_FILE), b"half").unwrap();
    fs::write(bundle.join(".tmp-pointer"), b"v-0000").unwrap();
    fs::create_dir(bundle.join("v-000009")).unwrap();
    fs::write(bundle.join("v-000009").join(INDEX_FILE), b"half").unwrap();
    assert_eq!(current_dir(&bundle).unwrap(), bundle.join("v-000001"));
    assert!(Bundle::load(&bundle, &fingerprint("aa")).is_ok());

    index.save(&bundle).unwrap();
    assert_eq!(entries(&bundle), ["CURRENT", "v-000001", "v-000010"]);
    assert!(Bundle::load(&bundle, &fingerprint("aa")).is_ok());
}

#[test]
fn a_corrupt_or_missing_pointer_falls_back_to_the_newest_complete_version() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("index");
    let mut index = sample();
    index.save(&bundle).unwrap();
    index.save(&bundle).unwrap();
    let pointer = bundle.join(layout::POINTER_FILE);
    for garbage in ["", "v-\n", "../etc\n", "v-000007\n", "\u{0}\u{1}"] {
        fs::write(&pointer, garbage).unwrap();
        assert_eq!(
            current_dir(&bundle).unwrap(),
            bundle.join("v-000002"),
            "{garbage:?}"
        );
    }
    // A crash between the version's rename and the pointer's: the new version is complete.
    fs::remove_file(&pointer).unwrap();
    assert_eq!(current_dir(&bundle).unwrap(), bundle.join("v-000002"));
    assert!(Bundle::load(&bundle, &fingerprint("aa")).is_ok());
}

#[test]
fn a_legacy_bundle_is_read_and_replaced_only_after_the_pointer_moved() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("index");
    let mut index = sample();
    index.save(&bundle).unwrap();
    // The pre-versions layout: the files directly in the directory.
    let legacy = dir.path().join("legacy");
    fs::create_dir(&legacy).unwrap();
    for name in [INDEX_FILE, MANIFEST_FILE] {
        fs::copy(bundle.join("v-000001").join(name), legacy.join(name)).unwrap();
    }
    assert!(bundle_exists(&legacy));
    assert_eq!(current_dir(&legacy).unwrap(), legacy);
    assert!(Bundle::load(&legacy, &fingerprint("aa")).is_ok());
    index.save(&legacy).unwrap();
    assert_eq!(entries(&legacy), ["CURRENT", "v-000001"]);
    assert!(Bundle::load(&legacy, &fingerprint("aa")).is_ok());
}

#[test]
fn no_bundle_and_an_unwritable_directory_are_clean_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("nothing");
    assert!(!bundle_exists(&empty));
    let err = Bundle::load(&empty, &fingerprint("aa"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("no bundle here") && err.contains("router train"),
        "{err}"
    );
    // A bundle directory under a regular file cannot be created, even by root.
    let file = dir.path().join("file");
    fs::write(&file, b"").unwrap();
    assert!(sample().save(&file.join("index")).is_err());
    let bundle = dir.path().join("index");
    sample().save(&bundle).unwrap();
    fs::write(
        bundle.join("v-000002"),
        b"a file where the next version goes",
    )
    .unwrap();
    assert!(sample().save(&bundle).is_err());
    // The failed save left no staging directory behind, and the old bundle serves.
    assert_eq!(entries(&bundle), ["CURRENT", "v-000001", "v-000002"]);
    assert!(Bundle::load(&bundle, &fingerprint("aa")).is_ok());
}
