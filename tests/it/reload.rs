//! The last good state wins: refused reloads change nothing; good ones show in the next decision.

use std::sync::Arc;

use semantic_router::pipeline::bundle::{current_dir, Bundle, INDEX_FILE, MANIFEST_FILE};
use semantic_router::pipeline::ClassifyInput;

use crate::common;

fn classify_versions(core: &semantic_router::serve::Core) -> (String, String) {
    let snapshot = core.live.snapshot();
    let d = core
        .pipeline
        .classify(
            &snapshot,
            &ClassifyInput {
                text: "write a limerick about a cat".into(),
                request_id: None,
                ..ClassifyInput::default()
            },
        )
        .unwrap();
    (d.policy_version, d.index_version)
}

#[test]
fn a_broken_policy_keeps_the_old_one_and_a_good_one_is_served_next() {
    let core = common::core();
    let (old_policy, old_index) = classify_versions(&core);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    let shipped = std::fs::read_to_string(common::policy_path()).unwrap();

    std::fs::write(&path, shipped.replace("k = 10", "kk = 10")).unwrap();
    let err = core.live.reload_policy(&path).unwrap_err().to_string();
    assert!(err.contains("kk"), "{err}");
    assert_eq!(
        classify_versions(&core),
        (old_policy.clone(), old_index.clone())
    );
    assert!(core.live.last_error().unwrap().contains("kk"));

    // A policy that drops a bucket the index holds is refused too (cross-file validation).
    let without_code = shipped.replace("[buckets.code]", "[buckets.code_renamed]");
    std::fs::write(&path, without_code).unwrap();
    let err = core.live.reload_policy(&path).unwrap_err().to_string();
    assert!(err.contains("code"), "{err}");
    assert_eq!(classify_versions(&core).0, old_policy);

    std::fs::write(
        &path,
        shipped.replace(
            "policy_version = \"2026-12-01.1\"",
            "policy_version = \"2026-11-30.2\"",
        ),
    )
    .unwrap();
    assert!(core.live.reload_policy(&path).is_ok());
    assert_eq!(
        classify_versions(&core),
        ("2026-11-30.2".to_owned(), old_index)
    );
    assert!(core.live.last_error().is_none());
}

#[test]
fn corrupt_or_foreign_bundles_are_refused_with_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("index");
    let examples = semantic_router::store::ExampleSet::load(
        &common::archetypes_dir(),
        semantic_router::store::Strictness::Archetypes,
    )
    .unwrap();
    let mut index = semantic_router::pipeline::indexer::build_index(
        &examples,
        common::embedder().as_ref(),
        Default::default(),
        &|_, _| {},
    )
    .unwrap();
    index.save(&bundle).unwrap();
    let fingerprint = common::embedder_fingerprint();
    let loaded = Bundle::load(&bundle, &fingerprint).unwrap();
    assert_eq!(loaded.version(), index.version());

    let mut foreign = fingerprint.clone();
    foreign.sha256 = "0".repeat(64);
    let err = Bundle::load(&bundle, &foreign).err().unwrap().to_string();
    assert!(
        err.contains("built with model") && err.contains("router train"),
        "{err}"
    );

    let files = current_dir(&bundle).unwrap();
    let mut bytes = std::fs::read(files.join(INDEX_FILE)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(files.join(INDEX_FILE), &bytes).unwrap();
    let err = Bundle::load(&bundle, &fingerprint)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("corrupt"), "{err}");

    std::fs::write(files.join(MANIFEST_FILE), "{not json").unwrap();
    let err = Bundle::load(&bundle, &fingerprint)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a valid manifest"), "{err}");

    // The live state refuses nothing it cannot verify: swapping a good index works.
    let core = common::core();
    assert!(core.live.swap_bundle(Arc::new(loaded)).is_ok());
}
