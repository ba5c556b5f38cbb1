//! What misroutes cost (`router eval` with a policy): a row is under-routed when its
//! predicted bucket's primary target is on a cheaper tier than its labeled bucket's
//! (quality lost), over-routed when on a more capable one (money spent). Only rows whose
//! label and prediction are both buckets of the policy count.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::decide::Policy;
use crate::types::BucketId;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoutingCost {
    /// Rows whose label and prediction are both buckets of the policy.
    pub rows: usize,
    pub under_routed: f64,
    pub over_routed: f64,
}

/// Under- and over-routing from a confusion table (labeled bucket → predicted → count);
/// `None` when no row's label and prediction are both policy buckets.
pub fn routing_cost(
    policy: &Policy,
    confusion: &BTreeMap<String, BTreeMap<String, usize>>,
) -> Option<RoutingCost> {
    let (mut rows, mut under, mut over) = (0usize, 0usize, 0usize);
    for (gold, predicted) in confusion {
        let Some(needed) = policy.primary_tier(&BucketId::new(gold)) else {
            continue;
        };
        for (bucket, &n) in predicted {
            let Some(got) = policy.primary_tier(&BucketId::new(bucket)) else {
                continue;
            };
            rows += n;
            if got < needed {
                under += n;
            } else if got > needed {
                over += n;
            }
        }
    }
    let share = |n: usize| n as f64 / rows as f64;
    (rows > 0).then(|| RoutingCost {
        rows,
        under_routed: share(under),
        over_routed: share(over),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped_policy() -> Policy {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/archetypes/policy.toml");
        Policy::load(std::path::Path::new(path)).unwrap()
    }

    #[test]
    fn cheaper_and_dearer_misroutes_are_told_apart() {
        let policy = shipped_policy();
        let tier = |b: &str| policy.primary_tier(&BucketId::new(b)).unwrap();
        assert!(tier("chit_chat") < tier("math_reasoning"));
        let confusion: BTreeMap<String, BTreeMap<String, usize>> = [
            // 6 right, 3 sent down to chit_chat, 1 sent up from chit_chat.
            (
                "math_reasoning",
                vec![("math_reasoning", 6), ("chit_chat", 3)],
            ),
            ("chit_chat", vec![("math_reasoning", 1)]),
            // Not buckets of the policy: left out.
            ("balance", vec![("balance", 5)]),
            ("code", vec![("(none)", 2)]),
        ]
        .into_iter()
        .map(|(g, p)| {
            let p = p.into_iter().map(|(b, n)| (b.to_owned(), n)).collect();
            (g.to_owned(), p)
        })
        .collect();
        let cost = routing_cost(&policy, &confusion).unwrap();
        assert_eq!(cost.rows, 10);
        assert!((cost.under_routed - 0.3).abs() < 1e-9, "{cost:?}");
        assert!((cost.over_routed - 0.1).abs() < 1e-9, "{cost:?}");
        let none: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        assert_eq!(routing_cost(&policy, &none), None);
    }
}
