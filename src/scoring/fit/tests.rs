use super::*;
use crate::types::Embedding;

/// Three buckets of noisy unit vectors around three directions in 8-d.
fn data(n_per: usize, seed: u32) -> (Vec<Vec<f32>>, Vec<usize>) {
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state as f32 / u32::MAX as f32) - 0.5
    };
    let mut vectors = Vec::new();
    let mut labels = Vec::new();
    for i in 0..3 * n_per {
        let class = i % 3;
        let mut v: Vec<f32> = (0..8).map(|_| 0.6 * noise()).collect();
        v[class] += 1.0;
        vectors.push(Embedding::normalized(v).into_vec());
        labels.push(class);
    }
    (vectors, labels)
}

#[test]
fn fits_a_calibrated_head_that_routes_held_out_rows() {
    let (vectors, labels) = data(60, 7);
    let rows = FitRows {
        vectors: vectors.iter().map(Vec::as_slice).collect(),
        labels,
    };
    let buckets: Vec<BucketId> = ["a", "b", "c"].iter().map(|b| BucketId::new(b)).collect();
    let options = FitOptions {
        head: HeadOptions {
            epochs: 20,
            ..HeadOptions::default()
        },
        ..FitOptions::default()
    };
    let (model, report) = fit_scoring(buckets, 8, &rows, None, &options).unwrap();
    assert!(model.head().is_some());
    assert_eq!(report.rows_calibrated, 36);
    let combined = report
        .scorers
        .iter()
        .find(|s| s.scorer == ScorerKind::Combined)
        .unwrap();
    assert!(combined.accuracy > 0.9, "{combined:?}");
    assert!((0.0..=1.0).contains(&model.calibration().head_weight));

    let (test, test_labels) = data(30, 99);
    let correct = test
        .iter()
        .zip(&test_labels)
        .filter(|(v, &l)| {
            let s = model.score(ScorerKind::Head, v, &[]).unwrap();
            s.bucket() == &model.buckets()[l]
        })
        .count();
    assert!(correct as f64 / test.len() as f64 > 0.9);
}

#[test]
fn out_of_scope_rows_count_against_precision() {
    let (vectors, labels) = data(40, 3);
    let rows = FitRows {
        vectors: vectors.iter().map(Vec::as_slice).collect(),
        labels,
    };
    // Calibration rows: in-scope ones plus off-axis vectors that belong to no bucket.
    let (cal, cal_labels) = data(20, 5);
    let oos: Vec<Vec<f32>> = (0..20)
        .map(|i| {
            Embedding::normalized(
                (0..8)
                    .map(|d| if d == 3 + i % 5 { 1.0 } else { 0.05 })
                    .collect(),
            )
            .into_vec()
        })
        .collect();
    let calibration = CalibrationRows {
        vectors: cal.iter().chain(&oos).map(Vec::as_slice).collect(),
        labels: cal_labels
            .into_iter()
            .map(Some)
            .chain(std::iter::repeat_n(None, oos.len()))
            .collect(),
    };
    let buckets: Vec<BucketId> = ["a", "b", "c"].iter().map(|b| BucketId::new(b)).collect();
    let (_, report) = fit_scoring(
        buckets,
        8,
        &rows,
        Some(&calibration),
        &FitOptions::default(),
    )
    .unwrap();
    assert_eq!(report.rows_out_of_scope, 20);
    for s in &report.scorers {
        if let Some(p) = s.threshold {
            assert!(p.precision >= 0.95, "{s:?}");
        }
    }
}

#[test]
fn one_bucket_needs_no_head() {
    let rows = FitRows {
        vectors: vec![&[1.0, 0.0]],
        labels: vec![0],
    };
    let (model, _) = fit_scoring(
        vec![BucketId::new("a")],
        2,
        &rows,
        None,
        &FitOptions::default(),
    )
    .unwrap();
    assert!(model.head().is_none());
}
