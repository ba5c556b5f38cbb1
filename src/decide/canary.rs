//! Canary split: a stable hash of the request's routing key picks a deterministic share of a
//! bucket's traffic for its canary target. Same key, same bucket → same answer, on every
//! replica and across restarts (FNV-1a, not the std hasher, whose seed may change).

use std::sync::Arc;

use serde::Serialize;

use super::catalogue::Target;

/// A bucket's canary: `percent` of keyed requests go to `target` as primary.
#[derive(Debug, Clone, PartialEq)]
pub struct CanarySpec {
    pub target: Arc<Target>,
    /// 0..=100.
    pub percent: u8,
}

/// What a decision reports when it was routed to a canary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CanaryApplied {
    pub target: String,
    pub percent: u8,
}

/// Hash resolution: shares are decided in basis points, so percents are exact.
const SLOTS: u64 = 10_000;

/// Whether `key` falls in the `percent` share of `bucket`'s traffic. Salting with the bucket
/// keeps one tenant from being in every bucket's canary at once.
pub fn in_share(bucket: &str, key: &str, percent: u8) -> bool {
    in_basis_points(bucket, key, u32::from(percent) * 100)
}

/// Whether `key` falls in the share of `basis_points` (hundredths of a percent) salted by
/// `salt`; shared with the fallback drills, which salt apart from the canary.
pub fn in_basis_points(salt: &str, key: &str, basis_points: u32) -> bool {
    let slot = fnv1a(&[salt.as_bytes(), b"\0", key.as_bytes()]) % SLOTS;
    slot < u64::from(basis_points)
}

/// 64-bit FNV-1a over the concatenated parts.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    parts
        .iter()
        .flat_map(|p| p.iter())
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // From the FNV reference test suite.
        assert_eq!(fnv1a(&[b""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(&[b"foo"]), 0xdcb2_7518_fed9_d577);
    }

    #[test]
    fn edges_of_the_share() {
        assert!(!in_share("code", "k", 0));
        assert!(in_share("code", "k", 100));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// 10 000 keys: the share's standard deviation is at most 0.5 points, so 3 points is 6σ.
        #[test]
        fn share_is_deterministic_and_close_to_percent(percent in 0u8..=100, salt in 0u32..1000) {
            let n = 10_000;
            let hits = (0..n)
                .filter(|i| in_share("code", &format!("req-{salt}-{i}"), percent))
                .count();
            let share = hits as f64 * 100.0 / n as f64;
            prop_assert!((share - f64::from(percent)).abs() <= 3.0, "{share} vs {percent}");
            let again = (0..n)
                .filter(|i| in_share("code", &format!("req-{salt}-{i}"), percent))
                .count();
            prop_assert_eq!(hits, again);
        }
    }
}
