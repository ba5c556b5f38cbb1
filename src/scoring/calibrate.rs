//! Making scores honest: temperature scaling fitted on held-out rows, expected calibration
//! error, out-of-scope AUROC and the confidence threshold that reaches a target precision.

/// `softmax(z / t)`, numerically stable.
pub fn softmax_with_temperature(z: &[f32], temperature: f32) -> Vec<f32> {
    let t = temperature.max(1e-4);
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = z.iter().map(|v| ((v - max) / t).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Negative log-likelihood of the gold classes under `softmax(z / t)`, averaged.
fn mean_nll(rows: &[(Vec<f32>, usize)], temperature: f64) -> f64 {
    if rows.is_empty() {
        return 0.0;
    }
    let total: f64 = rows
        .iter()
        .map(|(z, gold)| {
            let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let log_sum = z
                .iter()
                .map(|&v| (f64::from(v - max) / temperature).exp())
                .sum::<f64>()
                .ln();
            log_sum - f64::from(z[*gold] - max) / temperature
        })
        .sum();
    total / rows.len() as f64
}

/// The temperature that minimises held-out NLL of `(scores, gold)` rows: golden-section
/// search over log t in [1e-3, 1e3] (NLL is unimodal in t for a fixed argmax).
pub fn fit_temperature(rows: &[(Vec<f32>, usize)]) -> f32 {
    if rows.is_empty() {
        return 1.0;
    }
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    let (mut lo, mut hi) = ((1e-3f64).ln(), (1e3f64).ln());
    let f = |log_t: f64| mean_nll(rows, log_t.exp());
    let mut a = hi - phi * (hi - lo);
    let mut b = lo + phi * (hi - lo);
    let (mut fa, mut fb) = (f(a), f(b));
    for _ in 0..60 {
        if fa < fb {
            hi = b;
            b = a;
            fb = fa;
            a = hi - phi * (hi - lo);
            fa = f(a);
        } else {
            lo = a;
            a = b;
            fa = fb;
            b = lo + phi * (hi - lo);
            fb = f(b);
        }
    }
    ((lo + hi) / 2.0).exp() as f32
}

/// Expected calibration error over `(confidence, correct)` pairs, 15 equal-width bins.
pub fn expected_calibration_error(points: &[(f32, bool)]) -> f64 {
    const BINS: usize = 15;
    if points.is_empty() {
        return 0.0;
    }
    let mut sums = [(0f64, 0f64, 0usize); BINS];
    for &(conf, correct) in points {
        let bin = ((f64::from(conf) * BINS as f64) as usize).min(BINS - 1);
        sums[bin].0 += f64::from(conf);
        sums[bin].1 += f64::from(u8::from(correct));
        sums[bin].2 += 1;
    }
    let n = points.len() as f64;
    sums.iter()
        .filter(|(_, _, count)| *count > 0)
        // |mean confidence − accuracy| weighted by the bin's share = |Σ conf − Σ correct| / n.
        .map(|(conf, acc, _)| (conf - acc).abs() / n)
        .sum()
}

/// Area under the ROC curve for telling positives from negatives by score (higher = more
/// positive), ties counted half: the probability that a random positive outscores a random
/// negative. `None` without both kinds.
pub fn auroc(positives: &[f32], negatives: &[f32]) -> Option<f64> {
    if positives.is_empty() || negatives.is_empty() {
        return None;
    }
    let mut all: Vec<(f32, bool)> = positives
        .iter()
        .map(|&s| (s, true))
        .chain(negatives.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Mann-Whitney U with average ranks for ties.
    let mut rank_sum_pos = 0f64;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += all[i..=j].iter().filter(|(_, p)| *p).count() as f64 * avg_rank;
        i = j + 1;
    }
    let np = positives.len() as f64;
    let nn = negatives.len() as f64;
    Some((rank_sum_pos - np * (np + 1.0) / 2.0) / (np * nn))
}

/// One candidate prediction for threshold fitting.
#[derive(Debug, Clone, Copy)]
pub struct Scored {
    pub confidence: f32,
    /// In scope and routed to its gold bucket. Out-of-scope rows are never correct: accepting
    /// them costs precision, abstaining on them is right.
    pub correct: bool,
}

/// The lowest confidence threshold at which the accepted predictions (confidence ≥ threshold)
/// reach `target_precision`, with the precision and coverage there. `None` when no threshold
/// reaches it (not even accepting only the most confident row).
pub fn threshold_for_precision(rows: &[Scored], target_precision: f64) -> Option<OperatingPoint> {
    let mut sorted: Vec<Scored> = rows.to_vec();
    sorted.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let mut correct = 0usize;
    let mut best = None;
    let mut i = 0;
    while i < sorted.len() {
        // Accept every row tied at this confidence together.
        let conf = sorted[i].confidence;
        while i < sorted.len() && sorted[i].confidence == conf {
            correct += usize::from(sorted[i].correct);
            i += 1;
        }
        let precision = correct as f64 / i as f64;
        if precision >= target_precision {
            best = Some(OperatingPoint {
                threshold: conf,
                precision,
                coverage: i as f64 / sorted.len() as f64,
            });
        }
    }
    best
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatingPoint {
    pub threshold: f32,
    /// Share of accepted rows that are correct.
    pub precision: f64,
    /// Share of rows accepted.
    pub coverage: f64,
}

/// Platt scaling: `P(correct) = σ(a · x + b)` for a one-dimensional evidence score `x`,
/// fitted by Newton's method on held-out rows with Platt's smoothed targets (so a set with
/// no errors still gives a finite slope).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Platt {
    pub a: f64,
    pub b: f64,
}

impl Platt {
    pub fn probability(&self, x: f32) -> f32 {
        (1.0 / (1.0 + (-(self.a * f64::from(x) + self.b)).exp())) as f32
    }

    /// Fits `(score, correct)` points; `None` with fewer than two points.
    pub fn fit(points: &[(f32, bool)]) -> Option<Self> {
        if points.len() < 2 {
            return None;
        }
        let positives = points.iter().filter(|(_, ok)| *ok).count() as f64;
        let negatives = points.len() as f64 - positives;
        let hi = (positives + 1.0) / (positives + 2.0);
        let lo = 1.0 / (negatives + 2.0);
        // Centre and scale x so that Newton's steps are well conditioned.
        let n = points.len() as f64;
        let mean = points.iter().map(|(x, _)| f64::from(*x)).sum::<f64>() / n;
        let spread = (points
            .iter()
            .map(|(x, _)| (f64::from(*x) - mean).powi(2))
            .sum::<f64>()
            / n)
            .sqrt()
            .max(1e-9);
        let (mut a, mut b) = (0.0f64, (positives + 1.0).ln() - (negatives + 1.0).ln());
        for _ in 0..100 {
            let (mut g_a, mut g_b, mut h_aa, mut h_ab, mut h_bb) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for &(x, ok) in points {
                let x = (f64::from(x) - mean) / spread;
                let t = if ok { hi } else { lo };
                let p = 1.0 / (1.0 + (-(a * x + b)).exp());
                let w = (p * (1.0 - p)).max(1e-12);
                g_a += (p - t) * x;
                g_b += p - t;
                h_aa += w * x * x;
                h_ab += w * x;
                h_bb += w;
            }
            // A tiny ridge keeps the Hessian invertible on separable data.
            h_aa += 1e-6;
            h_bb += 1e-6;
            let det = h_aa * h_bb - h_ab * h_ab;
            if det.abs() < 1e-18 {
                break;
            }
            let step_a = (h_bb * g_a - h_ab * g_b) / det;
            let step_b = (h_aa * g_b - h_ab * g_a) / det;
            a -= step_a;
            b -= step_b;
            if step_a.abs() < 1e-9 && step_b.abs() < 1e-9 {
                break;
            }
        }
        // Undo the centring: a·(x − mean)/spread + b.
        let a_raw = a / spread;
        Some(Self {
            a: a_raw,
            b: b - a_raw * mean,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_temperature_sharpens() {
        let p = softmax_with_temperature(&[1.0, 2.0, 3.0], 1.0);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let sharp = softmax_with_temperature(&[1.0, 2.0, 3.0], 0.1);
        assert!(sharp[2] > p[2] && sharp[2] > 0.99);
    }

    #[test]
    fn fitted_temperature_undoes_a_known_scale() {
        // Rows drawn so that softmax(z) is calibrated; scaling z by 4 must be undone by t ≈ 4.
        let mut rows = Vec::new();
        for i in 0..400 {
            let margin = (i % 20) as f32 / 10.0;
            let p_top = 1.0 / (1.0 + (-margin).exp());
            // Gold is the top class in proportion p_top of each margin's rows.
            let gold_is_top = ((i / 20) as f32) < p_top * 20.0;
            let z = vec![4.0 * margin, 0.0];
            rows.push((z, if gold_is_top { 0 } else { 1 }));
        }
        let t = fit_temperature(&rows);
        assert!((3.0..5.5).contains(&t), "{t}");
    }

    #[test]
    fn ece_is_zero_when_confidence_matches_accuracy() {
        let points: Vec<(f32, bool)> = (0..10).map(|i| (0.7, i < 7)).collect();
        assert!(expected_calibration_error(&points) < 1e-6);
        let over: Vec<(f32, bool)> = (0..10).map(|i| (0.9, i < 5)).collect();
        assert!((expected_calibration_error(&over) - 0.4).abs() < 1e-6);
    }

    #[test]
    fn auroc_orders_and_ties() {
        assert_eq!(auroc(&[0.9, 0.8], &[0.1, 0.2]), Some(1.0));
        assert_eq!(auroc(&[0.1], &[0.9]), Some(0.0));
        assert_eq!(auroc(&[0.5], &[0.5]), Some(0.5));
        assert_eq!(auroc(&[], &[0.5]), None);
    }

    #[test]
    fn platt_recovers_a_logistic_relation() {
        // P(correct | x) = σ(2x − 1) sampled exactly in proportion at 11 values of x.
        let mut points = Vec::new();
        for step in 0..=10 {
            let x = step as f32 / 2.0 - 2.5;
            let p = 1.0 / (1.0 + (-(2.0 * f64::from(x) - 1.0)).exp());
            let correct = (p * 200.0).round() as usize;
            points.extend(std::iter::repeat_n((x, true), correct));
            points.extend(std::iter::repeat_n((x, false), 200 - correct));
        }
        let platt = Platt::fit(&points).unwrap();
        assert!(
            (platt.a - 2.0).abs() < 0.1 && (platt.b + 1.0).abs() < 0.1,
            "{platt:?}"
        );
        assert!(platt.probability(10.0) > 0.99 && platt.probability(-10.0) < 0.01);
        // No errors at all still gives a finite, increasing fit.
        let all_right: Vec<(f32, bool)> = (0..10).map(|i| (i as f32, true)).collect();
        let p = Platt::fit(&all_right).unwrap();
        assert!(p.a.is_finite() && p.probability(9.0) <= 1.0);
    }

    #[test]
    fn threshold_reaches_target_precision() {
        let rows: Vec<Scored> = [
            (0.9, true),
            (0.8, true),
            (0.7, false),
            (0.6, true),
            (0.5, false),
        ]
        .iter()
        .map(|&(confidence, correct)| Scored {
            confidence,
            correct,
        })
        .collect();
        let p = threshold_for_precision(&rows, 0.75).unwrap();
        assert_eq!(p.threshold, 0.6);
        assert!((p.precision - 0.75).abs() < 1e-9 && (p.coverage - 0.8).abs() < 1e-9);
        let strict = threshold_for_precision(&rows, 1.0).unwrap();
        assert_eq!(strict.threshold, 0.8);
        assert!(threshold_for_precision(
            &[Scored {
                confidence: 0.9,
                correct: false
            }],
            0.5
        )
        .is_none());
    }
}
