//! What recent decisions did, for people: share by bucket and target, abstentions,
//! under-confident decisions, and the estimated input spend against sending everything to the
//! policy's most expensive target (the saving the router exists for).
//!
//! One summary for both readers: `GET /admin/stats` (in-memory recent decisions) and
//! `router report` (a decision-log file). Pure: it never sees a request or a file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::decide::Policy;

/// What a summary needs of one decision. Deserializes from a decision-log line (its other
/// fields are ignored), so `router report` and the server count the same things.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionFacts {
    pub bucket: String,
    pub target: String,
    pub abstained: bool,
    pub margin: f32,
    pub prompt_tokens: usize,
    pub estimated_input_cost_usd: f64,
}

/// What the policy says about spend and confidence, read once per summary.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Baseline {
    /// The target with the highest input list price: where everything would go without a router.
    pub most_expensive_target: String,
    pub price_in_per_mtok: f64,
    /// Below this margin (and not abstained) a decision counts as under-confident: the same
    /// threshold that keeps a decision for labeling.
    pub uncertain_margin: f32,
}

impl Baseline {
    /// `None` when the policy has no target (a policy always has one; kept total anyway).
    pub fn from_policy(policy: &Policy) -> Option<Self> {
        let top = policy
            .targets
            .values()
            .max_by(|a, b| a.price_in_per_mtok.total_cmp(&b.price_in_per_mtok))?;
        Some(Self {
            most_expensive_target: top.name.clone(),
            price_in_per_mtok: top.price_in_per_mtok,
            uncertain_margin: policy.matching.uncertain_margin,
        })
    }
}

/// A count and its share of all decisions summarised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Share {
    pub count: usize,
    pub share: f64,
}

/// Estimated input spend, USD (prompt tokens × input list prices).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Spend {
    /// As routed: each decision's primary target.
    pub routed_usd: f64,
    /// Everything sent to the most expensive target.
    pub all_to_most_expensive_usd: f64,
    /// 1 − routed / all-to-most-expensive (0 when nothing was spent).
    pub saving_share: f64,
}

/// Decisions by bucket and target together (the routes actually taken).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RouteCount {
    pub bucket: String,
    pub target: String,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DecisionSummary {
    pub decisions: usize,
    pub by_bucket: BTreeMap<String, Share>,
    pub by_target: BTreeMap<String, Share>,
    /// Most taken first.
    pub routes: Vec<RouteCount>,
    pub abstained: Share,
    pub under_confident: Share,
    pub spend: Spend,
    pub baseline: Baseline,
}

/// Summarises `facts` under `baseline`.
pub fn summarize<'a>(
    facts: impl IntoIterator<Item = &'a DecisionFacts>,
    baseline: &Baseline,
) -> DecisionSummary {
    let mut n = 0usize;
    let (mut buckets, mut targets) = (BTreeMap::new(), BTreeMap::new());
    let mut routes: BTreeMap<(String, String), usize> = BTreeMap::new();
    let (mut abstained, mut under) = (0usize, 0usize);
    let (mut routed, mut top) = (0.0f64, 0.0f64);
    for f in facts {
        n += 1;
        *buckets.entry(f.bucket.clone()).or_insert(0usize) += 1;
        *targets.entry(f.target.clone()).or_insert(0usize) += 1;
        *routes
            .entry((f.bucket.clone(), f.target.clone()))
            .or_insert(0) += 1;
        abstained += usize::from(f.abstained);
        under += usize::from(!f.abstained && f.margin < baseline.uncertain_margin);
        routed += f.estimated_input_cost_usd;
        top += f.prompt_tokens as f64 * baseline.price_in_per_mtok / 1e6;
    }
    let share = |count: usize| Share {
        count,
        share: if n == 0 { 0.0 } else { count as f64 / n as f64 },
    };
    let mut routes: Vec<RouteCount> = routes
        .into_iter()
        .map(|((bucket, target), count)| RouteCount {
            bucket,
            target,
            count,
        })
        .collect();
    routes.sort_by_key(|r| std::cmp::Reverse(r.count));
    DecisionSummary {
        decisions: n,
        by_bucket: buckets.into_iter().map(|(k, c)| (k, share(c))).collect(),
        by_target: targets.into_iter().map(|(k, c)| (k, share(c))).collect(),
        routes,
        abstained: share(abstained),
        under_confident: share(under),
        spend: Spend {
            routed_usd: routed,
            all_to_most_expensive_usd: top,
            saving_share: if top > 0.0 { 1.0 - routed / top } else { 0.0 },
        },
        baseline: baseline.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(
        bucket: &str,
        target: &str,
        abstained: bool,
        margin: f32,
        tokens: usize,
        cost: f64,
    ) -> DecisionFacts {
        DecisionFacts {
            bucket: bucket.into(),
            target: target.into(),
            abstained,
            margin,
            prompt_tokens: tokens,
            estimated_input_cost_usd: cost,
        }
    }

    #[test]
    fn shares_abstentions_and_spend() {
        let baseline = Baseline {
            most_expensive_target: "big".into(),
            price_in_per_mtok: 10.0,
            uncertain_margin: 0.2,
        };
        let all = [
            facts("code", "mid", false, 0.9, 100, 100.0 * 3.0 / 1e6),
            facts("code", "mid", false, 0.1, 100, 100.0 * 3.0 / 1e6),
            facts("chat", "small", false, 0.5, 200, 200.0 * 1.0 / 1e6),
            facts("open", "mid", true, 0.0, 100, 100.0 * 3.0 / 1e6),
        ];
        let s = summarize(&all, &baseline);
        assert_eq!(s.decisions, 4);
        assert_eq!(
            s.by_bucket["code"],
            Share {
                count: 2,
                share: 0.5
            }
        );
        assert_eq!(s.by_target["mid"].count, 3);
        assert_eq!(
            s.routes[0],
            RouteCount {
                bucket: "code".into(),
                target: "mid".into(),
                count: 2
            }
        );
        assert_eq!(s.abstained.count, 1);
        assert_eq!(
            s.under_confident.count, 1,
            "the abstained one is not counted twice"
        );
        assert!((s.spend.all_to_most_expensive_usd - 500.0 * 10.0 / 1e6).abs() < 1e-12);
        assert!((s.spend.routed_usd - 1100.0 / 1e6).abs() < 1e-12);
        assert!((s.spend.saving_share - (1.0 - 1100.0 / 5000.0)).abs() < 1e-9);
        let empty = summarize(&[], &baseline);
        assert_eq!((empty.decisions, empty.spend.saving_share), (0, 0.0));
    }

    #[test]
    fn facts_read_from_a_decision_log_line() {
        let line = r#"{"ts_ms":1,"decision_id":"d","request_id":null,"tenant":null,"bucket":"extraction","confidence":0.7,"margin":0.9,"abstained":false,"target":"small-a","fallbacks":[],"rules":[],"reasons":[],"conversation":null,"policy_version":"p","index_version":"i","model":"m","model_revision":"r","tokens":19,"prompt_tokens":19,"truncated":false,"cache":"miss","estimated_input_cost_usd":7.6e-6,"timings_us":{"tokenize":1,"embed":1,"search":1,"score":1,"decide":1,"total":5}}"#;
        let f: DecisionFacts = serde_json::from_str(line).unwrap();
        assert_eq!(f, facts("extraction", "small-a", false, 0.9, 19, 7.6e-6));
    }

    #[test]
    fn the_shipped_policy_has_a_most_expensive_target() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/archetypes/policy.toml");
        let policy = Policy::load(std::path::Path::new(path)).unwrap();
        let b = Baseline::from_policy(&policy).unwrap();
        let max = policy
            .targets
            .values()
            .map(|t| t.price_in_per_mtok)
            .fold(0.0, f64::max);
        assert_eq!(b.price_in_per_mtok, max);
    }
}
