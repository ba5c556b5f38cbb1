//! Prometheus metrics: names declared once here. Labels are bounded (routes, statuses,
//! buckets, stages); never a prompt or a tenant id.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUESTS_TOTAL: &str = "router_requests_total";
pub const STAGE_DURATION_SECONDS: &str = "router_stage_duration_seconds";
pub const DECISIONS_TOTAL: &str = "router_decisions_total";
pub const OVERLOADED_TOTAL: &str = "router_overloaded_total";
/// Requests embedded together by the batch worker (recorded in `pipeline::batcher`).
use crate::pipeline::BATCH_SIZE_METRIC as BATCH_SIZE;

/// Histogram buckets in seconds: the interesting range is 0.2 ms to 50 ms.
const STAGE_BUCKETS: [f64; 12] = [
    0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.05, 0.1,
];

const BATCH_BUCKETS: [f64; 7] = [1.0, 2.0, 4.0, 8.0, 16.0, 24.0, 32.0];

/// Installs the process-wide recorder (the `metrics` facade is global by design) and returns
/// the handle that renders it. A second call in the same process (tests building several
/// apps) gets a handle to a recorder that is not installed: it renders empty, nothing fails.
pub fn install() -> PrometheusHandle {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(STAGE_DURATION_SECONDS.to_owned()),
            &STAGE_BUCKETS,
        )
        .expect("bucket list is non-empty. This is a bug.")
        .set_buckets_for_metric(Matcher::Full(BATCH_SIZE.to_owned()), &BATCH_BUCKETS)
        .expect("bucket list is non-empty. This is a bug.")
        .build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::debug!("a metrics recorder is already installed in this process");
    }
    handle
}

/// Records the per-stage timings of one decision.
pub fn record_decision(decision: &crate::decide::Decision) {
    let t = &decision.timings_us;
    for (stage, us) in [
        ("tokenize", t.tokenize),
        ("embed", t.embed),
        ("search", t.search),
        ("score", t.score),
        ("decide", t.decide),
        ("total", t.total),
    ] {
        metrics::histogram!(STAGE_DURATION_SECONDS, "stage" => stage).record(us as f64 / 1e6);
    }
    let outcome = if decision.routing.abstained {
        "default"
    } else {
        "semantic"
    };
    metrics::counter!(DECISIONS_TOTAL, "bucket" => decision.routing.bucket.to_string(), "reason" => outcome).increment(1);
}
