use super::*;
use crate::types::ArchetypeId;

fn n(bucket: &str, similarity: f32) -> Neighbour {
    Neighbour {
        id: ArchetypeId::new(&format!("{bucket}-{similarity}")),
        bucket: BucketId::new(bucket),
        similarity,
    }
}

fn model() -> ScoringModel {
    let buckets = vec![BucketId::new("a"), BucketId::new("b")];
    let vectors: Vec<&[f32]> = vec![&[1.0, 0.0], &[0.0, 1.0]];
    let rows = FitRows {
        vectors,
        labels: vec![0, 1],
    };
    ScoringModel::new(buckets, 2, &rows, None, Calibration::default()).unwrap()
}

#[test]
fn knn_scores_follow_similarity_weight() {
    let m = model();
    let s = m
        .score(
            ScorerKind::WeightedKnn,
            &[1.0, 0.0],
            &[n("a", 0.9), n("b", 0.5), n("a", 0.6)],
        )
        .unwrap();
    assert_eq!(s.bucket().as_str(), "a");
    assert_eq!((s.agreeing, s.considered), (2, 3));
    let total: f32 = s.ranked.iter().map(|r| r.score).sum();
    assert!((total - 1.0).abs() < 1e-5);
    assert!(s.margin() > 0.0 && s.margin() <= s.confidence());
}

#[test]
fn head_scorers_fall_back_to_knn_without_a_head() {
    let m = model();
    assert_eq!(m.effective(ScorerKind::Combined), ScorerKind::WeightedKnn);
    let s = m
        .score(ScorerKind::Head, &[0.0, 1.0], &[n("b", 0.8)])
        .unwrap();
    assert_eq!(s.scorer, ScorerKind::WeightedKnn);
    assert_eq!(s.bucket().as_str(), "b");
}

#[test]
fn centroid_and_top_mean_pick_the_closest_bucket() {
    let m = model();
    let c = m.score(ScorerKind::Centroid, &[0.1, 0.99], &[]).unwrap();
    assert_eq!(c.bucket().as_str(), "b");
    let t = m
        .score(
            ScorerKind::TopMean,
            &[1.0, 0.0],
            &[n("a", 0.9), n("b", 0.85), n("b", 0.2)],
        )
        .unwrap();
    // Mean of a = 0.9 beats mean of b = 0.525.
    assert_eq!(t.bucket().as_str(), "a");
}

#[test]
fn an_empty_model_scores_nothing() {
    assert!(ScoringModel::empty(2)
        .score(ScorerKind::WeightedKnn, &[1.0, 0.0], &[])
        .is_none());
}
