use super::*;

fn unit(v: &[f32]) -> Embedding {
    Embedding::normalized(v.to_vec())
}

#[test]
fn many_threads_can_search_at_once() {
    let vectors: Vec<Embedding> = (0..200)
        .map(|i| unit(&[1.0, i as f32, (i % 7) as f32]))
        .collect();
    let entries: Vec<(u64, &Embedding)> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.usearch");
    UsearchIndex::build(3, HnswParams::default(), &entries)
        .unwrap()
        .save(&path)
        .unwrap();
    for loaded in [
        UsearchIndex::load(&path, 3, HnswParams::default()).unwrap(),
        UsearchIndex::view(&path, 3, HnswParams::default()).unwrap(),
    ] {
        searches_never_fail_in_64_threads(&loaded);
    }
}

fn searches_never_fail_in_64_threads(loaded: &UsearchIndex) {
    let failures = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..64 {
            let failures = &failures;
            s.spawn(move || {
                for i in 0..50 {
                    if loaded
                        .search(&unit(&[1.0, (t * i) as f32, 1.0]), 10)
                        .is_err()
                    {
                        failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(failures.into_inner(), 0);
}

/// Exhaustive search and the graph walk, under either metric, return the same nearest
/// vectors with the same similarities (unit vectors: inner product is cosine).
#[test]
fn exact_and_graph_search_agree_under_both_metrics() {
    // Pseudo-random directions (an LCG), so no two similarities tie.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let vectors: Vec<Embedding> = (0..300)
        .map(|_| unit(&[next(), next(), next(), next()]))
        .collect();
    let entries: Vec<(u64, &Embedding)> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v))
        .collect();
    let query = unit(&[1.0, 2.0, -1.0, 3.0]);
    let mut results = Vec::new();
    for metric in [Metric::Cos, Metric::Ip] {
        for exact_search_up_to in [0, usize::MAX] {
            let params = HnswParams {
                metric,
                exact_search_up_to,
                ..HnswParams::default()
            };
            let hits = UsearchIndex::build(4, params, &entries)
                .unwrap()
                .search(&query, 5)
                .unwrap();
            results.push(hits);
        }
    }
    let expected: f32 = vectors
        .iter()
        .map(|v| {
            v.as_slice()
                .iter()
                .zip(query.as_slice())
                .map(|(a, b)| a * b)
                .sum()
        })
        .fold(f32::MIN, f32::max);
    for hits in &results {
        assert_eq!(hits.len(), 5);
        assert!((hits[0].similarity - expected).abs() < 2e-3, "{hits:?}");
        assert_eq!(
            hits.iter().map(|h| h.key).collect::<Vec<_>>(),
            results[0].iter().map(|h| h.key).collect::<Vec<_>>()
        );
    }
}

#[test]
fn settings_that_change_the_graph_do_not_build_alike() {
    let base = HnswParams::default();
    assert!(base.builds_like(&HnswParams {
        expansion_search: 7,
        exact_search_up_to: 0,
        ..base
    }));
    assert!(!base.builds_like(&HnswParams {
        metric: Metric::Cos,
        ..base
    }));
    assert!(!base.builds_like(&HnswParams {
        quantization: Quantization::F32,
        ..base
    }));
}

#[test]
fn search_save_load_round_trip() {
    let vectors = [
        unit(&[1.0, 0.0, 0.0]),
        unit(&[0.0, 1.0, 0.0]),
        unit(&[0.0, 0.0, 1.0]),
    ];
    let entries: Vec<(u64, &Embedding)> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v))
        .collect();
    let index = UsearchIndex::build(3, HnswParams::default(), &entries).unwrap();
    let hits = index.search(&unit(&[0.1, 1.0, 0.0]), 1).unwrap();
    assert_eq!(hits[0].key, 1);
    assert!(hits[0].similarity > 0.99);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.usearch");
    index.save(&path).unwrap();
    let loaded = UsearchIndex::load(&path, 3, HnswParams::default()).unwrap();
    assert_eq!(loaded.len(), 3);
    assert_eq!(loaded.search(&unit(&[0.0, 0.0, 1.0]), 1).unwrap()[0].key, 2);
    assert_eq!(loaded.vector(2), Some(unit(&[0.0, 0.0, 1.0])));
    let viewed = UsearchIndex::view(&path, 3, HnswParams::default()).unwrap();
    assert_eq!(viewed.len(), 3);
    assert_eq!(viewed.search(&unit(&[0.0, 0.0, 1.0]), 1).unwrap()[0].key, 2);
    // A file renamed over (how bundles are replaced) leaves the mapped one readable.
    std::fs::rename(dir.path().join("i.usearch"), dir.path().join("old")).unwrap();
    index.save(&path).unwrap();
    std::fs::remove_file(dir.path().join("old")).unwrap();
    assert_eq!(viewed.search(&unit(&[0.0, 1.0, 0.0]), 1).unwrap()[0].key, 1);
}
