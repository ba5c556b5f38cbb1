//! Fallback drills: fallbacks are tested the way backups are, by using them on a schedule. A
//! `drill = { percent = 1.0, window_utc = "02:00-04:00" }` (top level, or per bucket, which
//! wins) makes that share of decisions name the first fallback as the target, the primary
//! becoming the first fallback, with a reason `drill: …`, so callers' fallback paths carry
//! real traffic before an outage needs them.
//!
//! Which decisions drill is a stable hash of the routing key (the request id, else the
//! tenant), salted apart from the canary's, so the same request drills on every replica and a
//! test cannot flake. The window, when given, is a daily span in UTC (it may wrap midnight).

use serde::{Deserialize, Serialize};

use super::canary::in_basis_points;
use super::error::FieldError;

/// `drill` as written in the policy file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDrill {
    /// Share of decisions, 0.0..=100.0 (hundredths of a percent are honoured).
    pub percent: f64,
    /// `"HH:MM-HH:MM"`, UTC; absent: all day.
    #[serde(default)]
    pub window_utc: Option<String>,
}

/// A validated drill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DrillSpec {
    pub percent: f64,
    /// `percent` in hundredths of a percent.
    basis_points: u32,
    /// Minutes after midnight UTC: drills run from `start` (inclusive) to `end` (exclusive).
    window: Option<(u32, u32)>,
}

/// What a decision reports when it was a drill.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DrillApplied {
    /// The first fallback, named as the target.
    pub target: String,
    /// The primary it stood in for (now the first fallback).
    pub primary: String,
    pub percent: f64,
}

const MINUTES_A_DAY: u32 = 24 * 60;

impl DrillSpec {
    /// Whether a decision with `key` at `utc_seconds` (since the epoch) is a drill.
    pub fn fires(&self, bucket: &str, key: &str, utc_seconds: Option<u64>) -> bool {
        if let Some((start, end)) = self.window {
            let Some(now) = utc_seconds else {
                return false;
            };
            let minute = u32::try_from((now / 60) % u64::from(MINUTES_A_DAY)).unwrap_or(0);
            let inside = if start < end {
                (start..end).contains(&minute)
            } else {
                minute >= start || minute < end
            };
            if !inside {
                return false;
            }
        }
        in_basis_points(&format!("drill\0{bucket}"), key, self.basis_points)
    }
}

/// Checks a `drill` section: a percent in 0..=100 and a well-formed window.
pub(in crate::decide) fn validate_drill(raw: &RawDrill) -> Result<DrillSpec, FieldError> {
    if !raw.percent.is_finite() || !(0.0..=100.0).contains(&raw.percent) {
        return Err(FieldError::new(
            "percent",
            format!("{} is outside 0.0..=100.0", raw.percent),
        ));
    }
    let window = raw
        .window_utc
        .as_deref()
        .map(parse_window)
        .transpose()
        .map_err(|message| FieldError::new("window_utc", message))?;
    Ok(DrillSpec {
        percent: raw.percent,
        // In range by the check above; rounding keeps 0.01 steps exact.
        basis_points: (raw.percent * 100.0).round() as u32,
        window,
    })
}

fn parse_window(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("`{text}` is not a daily UTC window like \"02:00-04:00\"");
    let (start, end) = text.split_once('-').ok_or_else(bad)?;
    let minute = |hm: &str| -> Option<u32> {
        let (h, m) = hm.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60 && hm.trim().len() == 5).then_some(h * 60 + m)
    };
    let (start, end) = (minute(start).ok_or_else(bad)?, minute(end).ok_or_else(bad)?);
    if start == end {
        return Err(format!("`{text}` is empty: start and end are the same"));
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(percent: f64, window: Option<&str>) -> DrillSpec {
        validate_drill(&RawDrill {
            percent,
            window_utc: window.map(str::to_owned),
        })
        .unwrap()
    }

    #[test]
    fn percent_and_window_are_validated() {
        for bad in [-0.5, 100.5, f64::NAN, f64::INFINITY] {
            let raw = RawDrill {
                percent: bad,
                window_utc: None,
            };
            assert!(validate_drill(&raw).is_err(), "{bad}");
        }
        for bad in [
            "02:00",
            "2:00-04:00",
            "24:00-01:00",
            "02:60-03:00",
            "03:00-03:00",
            "a-b",
        ] {
            let raw = RawDrill {
                percent: 1.0,
                window_utc: Some(bad.into()),
            };
            assert!(validate_drill(&raw).is_err(), "{bad}");
        }
        assert_eq!(spec(1.0, Some("23:30-00:30")).window, Some((1410, 30)));
    }

    #[test]
    fn the_share_is_deterministic_and_near_percent() {
        let s = spec(1.0, None);
        let hits: Vec<usize> = (0..20_000)
            .filter(|i| s.fires("code", &format!("req-{i}"), None))
            .collect();
        // 1 % of 20 000 is 200, σ ≈ 14: 100..300 is 7σ either side.
        assert!((100..300).contains(&hits.len()), "{}", hits.len());
        let again: Vec<usize> = (0..20_000)
            .filter(|i| s.fires("code", &format!("req-{i}"), None))
            .collect();
        assert_eq!(hits, again);
        assert!(!spec(0.0, None).fires("code", "req-1", None));
        assert!(spec(100.0, None).fires("code", "req-1", None));
    }

    #[test]
    fn a_window_limits_drills_to_its_minutes_even_across_midnight() {
        let s = spec(100.0, Some("23:30-00:30"));
        let at = |h: u64, m: u64| Some(19_000 * 86_400 + h * 3600 + m * 60);
        assert!(s.fires("code", "k", at(23, 45)));
        assert!(s.fires("code", "k", at(0, 10)));
        assert!(!s.fires("code", "k", at(0, 30)));
        assert!(!s.fires("code", "k", at(12, 0)));
        assert!(!s.fires("code", "k", None), "no clock, no windowed drill");
    }
}
