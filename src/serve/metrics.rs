//! Prometheus metrics: names declared once here. Labels are bounded (routes, statuses,
//! buckets, stages); never a prompt or a tenant id.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::decide::Phase;

pub const REQUESTS_TOTAL: &str = "router_requests_total";
/// Time from the routed request head to the response head, by route and status: a 429's
/// shows how fast refusals are on the service's side, apart from the clients' own scheduling.
pub const REQUEST_DURATION_SECONDS: &str = "router_request_duration_seconds";
pub const STAGE_DURATION_SECONDS: &str = "router_stage_duration_seconds";
pub const DECISIONS_TOTAL: &str = "router_decisions_total";
/// Requests refused by admission (429 overloaded).
pub const OVERLOADED_TOTAL: &str = "router_overloaded_total";
/// Texts queued for the model, not yet in a forward pass (set at scrape time).
const MODEL_QUEUE_TEXTS: &str = "router_model_queue_texts";
/// How long a new text would queue behind them (those that do not fit in the next pass, at
/// the recent model time per text): what admission compares with `--queue-budget-ms`.
const MODEL_QUEUE_SECONDS: &str = "router_model_queue_seconds";
/// Decisions of conversations (earlier turns used), by whether the decided bucket differs
/// from the conversation's task before the turn.
pub const CONVERSATION_FOLLOWUPS_TOTAL: &str = "router_conversation_followups_total";
/// 1 for the build, model and versions being served (0 for versions served before).
pub const BUILD_INFO: &str = "router_build_info";
/// 1 for each target's current breaker state, 0 for its other states.
pub const BREAKER_STATE: &str = "router_breaker_state";
/// Breaker state changes caused by reported outcomes (`POST /feedback`).
pub const BREAKER_TRANSITIONS_TOTAL: &str = "router_breaker_transitions_total";
/// Decisions that were fallback drills, by bucket and the fallback named as target.
pub const DRILLS_TOTAL: &str = "router_drills_total";
pub use super::decision_log::DROPPED_METRIC as DECISION_LOG_DROPPED_TOTAL;
pub use crate::live::reloader::RELOAD_METRIC as RELOADS_TOTAL;
pub use crate::live::ARCHETYPES_METRIC as ARCHETYPES;
/// Vectors placed in built indexes, by source (recorded in `pipeline::indexer`).
pub use crate::pipeline::indexer::INDEX_VECTORS_METRIC as INDEX_VECTORS_TOTAL;
/// Requests embedded together by the batcher (recorded in `pipeline::batcher`).
use crate::pipeline::BATCH_SIZE_METRIC as BATCH_SIZE;
pub use crate::pipeline::{CACHE_HITS_METRIC as CACHE_HITS, CACHE_MISSES_METRIC as CACHE_MISSES};
/// Uncertain decisions the shared store's queue never got (recorded in `store::shared`).
pub use crate::store::shared::uncertain::DROPPED_METRIC as UNCERTAIN_SHARED_DROPPED_TOTAL;

/// Histogram buckets in seconds: the interesting range is 0.1 ms to 50 ms.
const STAGE_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03,
    0.05, 0.1, 0.25,
];

/// Whole requests, from a refusal (well under a millisecond) to a long prompt in a queue.
const REQUEST_BUCKETS: [f64; 16] = [
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0,
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
        .set_buckets_for_metric(
            Matcher::Full(REQUEST_DURATION_SECONDS.to_owned()),
            &REQUEST_BUCKETS,
        )
        .expect("bucket list is non-empty. This is a bug.")
        .set_buckets_for_metric(Matcher::Full(BATCH_SIZE.to_owned()), &BATCH_BUCKETS)
        .expect("bucket list is non-empty. This is a bug.")
        .build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::debug!("a metrics recorder is already installed in this process");
    } else {
        spawn_upkeep(handle.clone());
    }
    // Counters that alerts watch exist from the start, at 0.
    for name in [
        OVERLOADED_TOTAL,
        DECISION_LOG_DROPPED_TOTAL,
        CACHE_HITS,
        CACHE_MISSES,
    ] {
        metrics::counter!(name).increment(0);
    }
    handle
}

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The recorder keeps every histogram sample until a render or an upkeep folds it into the
/// buckets: without a scraper, memory grew by 8 bytes a sample (a 10-minute soak of 11.8
/// million requests took RSS from 154 to 373 MB). A thread of its own, so it needs no runtime.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("router-metrics-upkeep".to_owned())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no metrics upkeep thread: histograms grow until scraped");
    }
}

/// The labels of `router_build_info`.
pub type BuildLabels = [(&'static str, String); 5];

/// The build info of what `core` serves now.
pub fn build_labels(core: &crate::pipeline::compose::Core) -> BuildLabels {
    let versions = core.live.versions();
    [
        ("version", env!("CARGO_PKG_VERSION").to_owned()),
        ("model", core.info.model.id.clone()),
        ("revision", core.info.model.revision.clone()),
        ("policy_version", versions.policy_version),
        ("index_version", versions.index_version),
    ]
}

/// Brings the gauges read at scrape time up to date: build info (the versions served before
/// a reload go to 0) and each reported target's breaker state.
pub fn refresh(
    core: &crate::pipeline::compose::Core,
    last: &std::sync::Mutex<Option<BuildLabels>>,
) {
    let labels = build_labels(core);
    let mut last = last
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if last.as_ref() != Some(&labels) {
        if let Some(old) = last.take() {
            metrics::gauge!(BUILD_INFO, &old).set(0.0);
        }
        metrics::gauge!(BUILD_INFO, &labels).set(1.0);
        *last = Some(labels);
    }
    drop(last);
    let backlog = core.pipeline.backlog();
    metrics::gauge!(MODEL_QUEUE_TEXTS).set(backlog.queued() as f64);
    metrics::gauge!(MODEL_QUEUE_SECONDS).set(backlog.expected_wait().as_secs_f64());
    for report in core.pipeline.health().report(std::time::Instant::now()) {
        for phase in [Phase::Closed, Phase::Open, Phase::HalfOpen] {
            let on = if report.state == phase { 1.0 } else { 0.0 };
            metrics::gauge!(BREAKER_STATE, "target" => report.target.clone(), "state" => phase_name(phase))
                .set(on);
        }
    }
}

/// Counts a breaker transition caused by a reported outcome.
pub fn record_transition(target: &str, transition: &crate::decide::Transition) {
    if transition.from != transition.to {
        metrics::counter!(BREAKER_TRANSITIONS_TOTAL, "target" => target.to_owned(), "from" => phase_name(transition.from), "to" => phase_name(transition.to))
            .increment(1);
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Closed => "closed",
        Phase::Open => "open",
        Phase::HalfOpen => "half_open",
    }
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
    let r = &decision.routing;
    let abstained = if r.abstained { "true" } else { "false" };
    metrics::counter!(DECISIONS_TOTAL, "bucket" => r.bucket.to_string(), "target" => r.target.name.clone(), "abstained" => abstained).increment(1);
    if let Some(drill) = &r.drill {
        metrics::counter!(DRILLS_TOTAL, "bucket" => r.bucket.to_string(), "target" => drill.target.clone()).increment(1);
    }
    if let Some(conversation) = &r.conversation {
        let changed = if conversation.task == r.bucket {
            "false"
        } else {
            "true"
        };
        metrics::counter!(CONVERSATION_FOLLOWUPS_TOTAL, "changed_bucket" => changed).increment(1);
    }
}
