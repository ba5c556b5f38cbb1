//! Similarity-weighted k-nearest-neighbour vote: neighbours → bucket and confidence.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::types::{BucketId, BucketScore, BucketScores, Neighbour, ScorerKind};

/// The vote's outcome before any threshold is applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Vote {
    pub bucket: BucketId,
    /// The winning bucket's share of the total similarity weight, in [0, 1].
    pub confidence: f32,
    /// Cosine similarity of the single nearest archetype.
    pub top_similarity: f32,
    /// Neighbours that voted for the winner, and neighbours considered.
    pub agreeing: usize,
    pub considered: usize,
    /// Every bucket's share, highest first.
    pub scores: Vec<(BucketId, f32)>,
}

impl Vote {
    /// The vote as bucket scores: the similarity shares, uncalibrated.
    pub fn into_scores(self) -> BucketScores {
        BucketScores {
            scorer: ScorerKind::WeightedKnn,
            confidence: self.confidence,
            ranked: self
                .scores
                .into_iter()
                .map(|(bucket, score)| BucketScore { bucket, score })
                .collect(),
            top_similarity: self.top_similarity,
            agreeing: self.agreeing,
            considered: self.considered,
            fitted_threshold: None,
        }
    }
}

/// Each neighbour adds its (non-negative) similarity to its bucket; the heaviest bucket wins.
/// Ties go to the bucket holding the nearest neighbour, then to the smaller name, so the same
/// neighbours always give the same vote. `None` when there are no neighbours.
pub fn weighted_vote(neighbours: &[Neighbour]) -> Option<Vote> {
    let top_similarity = neighbours
        .iter()
        .map(|n| n.similarity)
        .fold(f32::NEG_INFINITY, f32::max);
    if neighbours.is_empty() {
        return None;
    }
    // bucket → (weight, votes, best similarity)
    let mut tally: BTreeMap<&BucketId, (f32, usize, f32)> = BTreeMap::new();
    for n in neighbours {
        let entry = tally
            .entry(&n.bucket)
            .or_insert((0.0, 0, f32::NEG_INFINITY));
        entry.0 += n.similarity.max(0.0);
        entry.1 += 1;
        entry.2 = entry.2.max(n.similarity);
    }
    let total: f32 = tally.values().map(|(w, _, _)| w).sum();
    let mut ranked: Vec<(&BucketId, (f32, usize, f32))> = tally.into_iter().collect();
    ranked.sort_by(|(a_id, a), (b_id, b)| {
        b.0.total_cmp(&a.0)
            .then(b.2.total_cmp(&a.2))
            .then(a_id.cmp(b_id))
    });
    let share = |w: f32| if total > 0.0 { w / total } else { 0.0 };
    let (winner, (weight, agreeing, _)) = ranked[0];
    Some(Vote {
        bucket: winner.clone(),
        confidence: share(weight),
        top_similarity,
        agreeing,
        considered: neighbours.len(),
        scores: ranked
            .iter()
            .map(|(id, (w, _, _))| ((*id).clone(), share(*w)))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ArchetypeId;

    fn n(bucket: &str, similarity: f32) -> Neighbour {
        Neighbour {
            id: ArchetypeId::new(&format!("{bucket}-{similarity}")),
            bucket: BucketId::new(bucket),
            similarity,
        }
    }

    #[test]
    fn weighted_majority_wins() {
        let v = weighted_vote(&[n("a", 0.9), n("b", 0.5), n("b", 0.5), n("a", 0.6)]).unwrap();
        assert_eq!(v.bucket.as_str(), "a");
        assert!((v.confidence - 1.5 / 2.5).abs() < 1e-6);
        assert_eq!((v.agreeing, v.considered), (2, 4));
        assert_eq!(v.top_similarity, 0.9);
        assert_eq!(v.scores.len(), 2);
    }

    #[test]
    fn similarity_beats_count() {
        let v = weighted_vote(&[
            n("a", 0.9),
            n("a", 0.8),
            n("b", 0.3),
            n("b", 0.3),
            n("b", 0.3),
        ])
        .unwrap();
        assert_eq!(v.bucket.as_str(), "a");
    }

    #[test]
    fn tie_goes_to_nearest_then_name() {
        let v = weighted_vote(&[n("b", 0.5), n("a", 0.4), n("a", 0.1)]).unwrap();
        assert_eq!(v.bucket.as_str(), "b");
        let v = weighted_vote(&[n("b", 0.5), n("a", 0.5)]).unwrap();
        assert_eq!(v.bucket.as_str(), "a");
    }

    #[test]
    fn negative_similarities_carry_no_weight() {
        let v = weighted_vote(&[n("a", -0.2), n("b", -0.1)]).unwrap();
        assert_eq!(v.confidence, 0.0);
        assert_eq!(v.top_similarity, -0.1);
    }

    #[test]
    fn empty_gives_none() {
        assert!(weighted_vote(&[]).is_none());
    }
}
