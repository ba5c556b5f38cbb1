//! Stage 3: bucket scores + request context + provider health → [`Routing`]. Pure: no I/O, no
//! clock (time is passed in), no randomness, so the same inputs always give the same routing
//! (property-tested in `tests.rs`).
//!
//! One entry point, [`decide`]: the scores' top bucket, unless the nearest archetype is too
//! far or the confidence is below the bucket's threshold (then the policy's default bucket)
//! → side rules and the request's needs → canary → health → the targets, escalation, shadow
//! and estimated cost. The scores come from `scoring` (the kNN tally lives there); `decide`
//! sees neither the neighbours nor a vector.
//!
//! Files: `policy/` (the file: raw → validated), `catalogue` and `rules` (their sections of
//! it), `canary`, `breaker` (the circuit-breaker state machine and the [`HealthView`] read
//! here), `request` (what the request says about itself), `select` (bucket → targets),
//! `decision` (what is answered), `error`.

pub mod breaker;
pub mod canary;
pub mod catalogue;
pub mod conversation;
pub mod decision;
pub mod drill;
mod error;
pub mod policy;
pub mod request;
pub mod rules;
mod select;

use std::time::Instant;

pub use breaker::{
    Availability, Breaker, BreakerState, HealthConfig, HealthView, OutcomeReport, Phase,
    ReportedOutcome, TargetHealth, Transition, WhenAllOpen,
};
pub use canary::{CanaryApplied, CanarySpec};
pub use catalogue::{Latency, Target, Tier};
pub use decision::{Decision, Routing, Timings, MAX_LISTED_SCORES};
pub use drill::{DrillApplied, DrillSpec};
pub use error::{DecideError, PolicyError};
pub use policy::{Policy, Threshold, Trigger};
pub use request::{Priority, RequestContext};
pub use rules::{Prefer, Rule};

use crate::types::{BucketId, BucketScores};
use conversation::{Blend, ConversationInput};
use policy::WhenUncertain;

/// What one decision depends on besides the policy.
#[derive(Debug, Clone, Copy)]
pub struct DecideInput<'a> {
    /// The calibrated bucket scores (`None`: no archetypes to compare with).
    pub scores: Option<&'a BucketScores>,
    /// The threshold fitted with the scoring model: what `min_confidence = "fitted"` means (None: not fitted).
    pub fitted_threshold: Option<f32>,
    /// The earlier turns of a conversation, scored (`None`: a single prompt, decided alone).
    pub conversation: Option<&'a ConversationInput<'a>>,
    pub request: &'a RequestContext,
    pub health: &'a HealthView,
    pub now: Instant,
}

/// Routes one request: the bucket its scores support (or the policy's default bucket), then
/// the targets of that bucket that the rules, the request's needs and the providers' health
/// at `input.now` allow.
pub fn decide(policy: &Policy, input: &DecideInput<'_>) -> Result<Routing, DecideError> {
    let mut reasons = Vec::with_capacity(4);
    let rank = |b: &BucketId| policy.primary_tier(b).map_or(0, |t| t as u8 + 1);
    let blend = match (input.conversation, input.scores) {
        (Some(conversation), Some(current)) => {
            conversation::blend(&policy.conversation, current, conversation, &rank)
        }
        (Some(_) | None, None) | (None, Some(_)) => None,
    };
    let scores = blend.as_ref().map(|b| &b.scores).or(input.scores);
    let mut semantic = semantic_bucket(policy, scores, input.fitted_threshold, &mut reasons)?;
    if let Some(s) = scores.filter(|_| !semantic.abstained) {
        prefer_capable(policy, s, &rank, &mut semantic, &mut reasons);
    }
    if let Some(blend) = &blend {
        keep_the_conversation(policy, blend, &rank, &mut semantic, &mut reasons);
    }
    let request = input.request;
    let selected = select::select(
        policy,
        semantic.bucket,
        request,
        input.health,
        input.now,
        &mut reasons,
    )?;
    let bucket_policy =
        policy
            .bucket(&selected.bucket)
            .ok_or_else(|| DecideError::UnknownBucket {
                bucket: selected.bucket.clone(),
            })?;
    let mut targets = selected.targets.into_iter();
    let target = targets
        .next()
        .expect("select returns at least one target. This is a bug.");
    let fallbacks: Vec<_> = targets.collect();
    let estimated_input_cost_usd = target.input_cost_usd(request.prompt_tokens);
    reasons.push(format!(
        "policy {}: {} → {} ({}/{}), {} fallback(s); ~${estimated_input_cost_usd:.6} input for {} tokens",
        policy.version,
        selected.bucket,
        target.name,
        target.provider,
        target.model,
        fallbacks.len(),
        request.prompt_tokens,
    ));
    Ok(Routing {
        bucket: selected.bucket,
        confidence: semantic.confidence,
        margin: scores.map_or(0.0, BucketScores::margin),
        scorer: scores.map(|s| s.scorer),
        scores: scores.map_or_else(Vec::new, |s| {
            s.ranked.iter().take(MAX_LISTED_SCORES).cloned().collect()
        }),
        abstained: semantic.abstained,
        target,
        fallbacks,
        escalation: bucket_policy.escalation.clone(),
        reasons,
        estimated_input_cost_usd,
        canary: selected.canary,
        drill: selected.drill,
        shadow: selected.shadow,
        probe: selected.probe,
        conversation: blend.map(|b| b.report),
    })
}

/// When the top two buckets are within `uncertain_margin` and the second one's primary is of
/// a more capable tier, the second wins (unless the policy says `when_uncertain = "top"`):
/// an unsure router should cost money, not quality.
fn prefer_capable(
    policy: &Policy,
    scores: &BucketScores,
    rank: &dyn Fn(&BucketId) -> u8,
    semantic: &mut Semantic,
    reasons: &mut Vec<String>,
) {
    let (Some(top), Some(second)) = (scores.ranked.first(), scores.ranked.get(1)) else {
        return;
    };
    let margin = top.score - second.score;
    if policy.matching.when_uncertain != WhenUncertain::Capable
        || margin >= policy.matching.uncertain_margin
        || rank(&second.bucket) <= rank(&semantic.bucket)
    {
        return;
    }
    reasons.push(format!(
        "uncertain: {} {:.2} vs {} {:.2} (margin {margin:.2} below {:.2}); the more capable tier wins: {}",
        top.bucket, top.score, second.bucket, second.score, policy.matching.uncertain_margin, second.bucket
    ));
    semantic.bucket = second.bucket.clone();
}

/// A follow-up that is not clearly a new task stays on at least the tier its conversation
/// needed; a new task moves, and says so (and when it moves to a cheaper tier).
fn keep_the_conversation(
    policy: &Policy,
    blend: &Blend,
    rank: &dyn Fn(&BucketId) -> u8,
    semantic: &mut Semantic,
    reasons: &mut Vec<String>,
) {
    let r = &blend.report;
    let tier = |b: &BucketId| policy.primary_tier(b).map_or("unknown", Tier::as_str);
    if r.new_task {
        let cheaper = if rank(&r.turn_bucket) < rank(&r.task) {
            format!(
                ", a cheaper tier ({} after {})",
                tier(&r.turn_bucket),
                tier(&r.task)
            )
        } else {
            String::new()
        };
        reasons.push(format!(
            "conversation: task changed from {} to {} (this turn alone {:.2}){cheaper}",
            r.task, r.turn_bucket, r.turn_confidence
        ));
        return;
    }
    reasons.push(format!(
        "conversation: {} earlier turn(s), task {}; this turn alone {} {:.2}, weighted {:.2}",
        r.turns.len(),
        r.task,
        r.turn_bucket,
        r.turn_confidence,
        r.current_weight
    ));
    if let Some(floor) = &blend.floor {
        if rank(&semantic.bucket) < rank(floor) {
            reasons.push(format!(
                "conversation: a follow-up that is not clearly a new task keeps the {} tier of {}, so {} instead of {}",
                tier(floor),
                floor,
                floor,
                semantic.bucket
            ));
            semantic.bucket = floor.clone();
            semantic.abstained = false;
        }
    }
}

/// The bucket the semantic match supports, before any rule.
struct Semantic {
    bucket: BucketId,
    confidence: f32,
    /// The match was not trusted, so `bucket` is the policy's default.
    abstained: bool,
}

/// The scores' top bucket when the nearest archetype is close enough and the confidence
/// reaches the bucket's threshold; otherwise the policy's default bucket. Says which, and why,
/// in the first reason.
fn semantic_bucket(
    policy: &Policy,
    scores: Option<&BucketScores>,
    fitted_threshold: Option<f32>,
    reasons: &mut Vec<String>,
) -> Result<Semantic, DecideError> {
    let default = |confidence| Semantic {
        bucket: policy.default_bucket.clone(),
        confidence,
        abstained: true,
    };
    let Some(s) = scores else {
        reasons.push(format!(
            "semantic: no archetypes to compare with; default bucket {}",
            policy.default_bucket
        ));
        return Ok(default(0.0));
    };
    let winner = s.bucket();
    let bucket_policy = policy
        .bucket(winner)
        .ok_or_else(|| DecideError::UnknownBucket {
            bucket: winner.clone(),
        })?;
    let summary = format!(
        "semantic ({}): {} {:.2}, margin {:.2}; {} of {} neighbours agree",
        s.scorer,
        winner,
        s.confidence(),
        s.margin(),
        s.agreeing,
        s.considered
    );
    let threshold = bucket_policy.min_confidence.resolve(fitted_threshold);
    let min_similarity = policy.matching.min_similarity;
    if s.considered > 0 && s.top_similarity < min_similarity {
        reasons.push(format!(
            "{summary}; nearest archetype similarity {:.2} is below {min_similarity:.2}, so default bucket {}",
            s.top_similarity, policy.default_bucket
        ));
        Ok(default(s.confidence()))
    } else if s.confidence() < threshold {
        reasons.push(format!(
            "{summary}; confidence is below {winner}'s threshold {threshold:.2}, so default bucket {}",
            policy.default_bucket
        ));
        Ok(default(s.confidence()))
    } else {
        reasons.push(summary);
        Ok(Semantic {
            bucket: winner.clone(),
            confidence: s.confidence(),
            abstained: false,
        })
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod drill_tests;
