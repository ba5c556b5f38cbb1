//! Routing a conversation, not its last line. Pure: per-turn bucket scores in, the scores to
//! route by and what the decision must say about the conversation out.
//!
//! The earlier turns (newest first, at most `max_turns` and `max_context_tokens`) vote with
//! weight `turn_decay^distance` (assistant turns `× assistant_weight`; without a user turn
//! there is no context: assistant turns alone never decide). Their weighted mean is the
//! conversation's task. The current turn moves the conversation only when it is clearly a
//! new task on its own: another bucket, at least `new_task_confidence` and
//! `new_task_min_tokens` long ("thanks! now write me a SQL query that…"). Otherwise it is a
//! follow-up ("and if the price doubles?", "make it shorter"): the scores are the blend
//! `current_weight × turn + (1 − current_weight) × context`, and the decision may not land
//! on a tier below the most capable one the conversation's user turns needed.
//!
//! Defaults were chosen on MT-Bench-101's dialogues (`router eval --conversations`, README
//! "Conversations"); the measured floor is checked by tests/it/conversations.rs.

use serde::{Deserialize, Serialize};

use crate::types::{BucketId, BucketScore, BucketScores, Speaker};

/// `[conversation]` in the policy. Every field has a default, so the table is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConversationPolicy {
    /// Earlier turns (user and assistant) considered, newest first.
    pub max_turns: usize,
    /// Tokens of earlier turns considered (each turn counts the tokens the model embedded).
    pub max_context_tokens: usize,
    /// Weight of a turn relative to the next newer one (1: every turn in the window counts
    /// the same).
    pub turn_decay: f32,
    /// Weight of an assistant turn relative to a user turn at the same distance (0: assistant
    /// turns are not embedded at all).
    pub assistant_weight: f32,
    /// Share of the current turn in the blend when it is a follow-up.
    pub current_weight: f32,
    /// Confidence the current turn alone needs to move the conversation to another task.
    pub new_task_confidence: f32,
    /// Tokens the current turn needs to move the conversation (a bare "shorter" never does).
    pub new_task_min_tokens: usize,
}

impl Default for ConversationPolicy {
    fn default() -> Self {
        Self {
            max_turns: 8,
            max_context_tokens: 512,
            turn_decay: 1.0,
            assistant_weight: 0.0,
            current_weight: 0.2,
            new_task_confidence: 0.95,
            new_task_min_tokens: 10,
        }
    }
}

impl ConversationPolicy {
    /// What is wrong with these settings, if anything (checked when the policy loads).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let unit = |name: &str, v: f32, problems: &mut Vec<String>| {
            if !(0.0..=1.0).contains(&v) {
                problems.push(format!("conversation.{name} must be in [0, 1], not {v}"));
            }
        };
        unit("turn_decay", self.turn_decay, &mut problems);
        unit("assistant_weight", self.assistant_weight, &mut problems);
        unit("current_weight", self.current_weight, &mut problems);
        unit(
            "new_task_confidence",
            self.new_task_confidence,
            &mut problems,
        );
        if self.max_turns > 64 {
            problems.push(format!(
                "conversation.max_turns must be at most 64, not {}",
                self.max_turns
            ));
        }
        problems
    }

    /// Whether assistant turns need embedding at all.
    pub fn uses_assistant_turns(&self) -> bool {
        self.assistant_weight > 0.0
    }
}

/// One earlier turn's scores, as the pipeline hands them in.
#[derive(Debug, Clone)]
pub struct ContextTurn<'a> {
    pub message_index: usize,
    pub speaker: Speaker,
    /// Turns between this one and the routed turn (0: the turn just before).
    pub distance: usize,
    pub scores: &'a BucketScores,
    /// Tokens the model embedded for the turn.
    pub tokens: usize,
}

/// What the conversation looked like to the router.
#[derive(Debug, Clone)]
pub struct ConversationInput<'a> {
    /// Earlier turns, newest first.
    pub turns: Vec<ContextTurn<'a>>,
    /// Tokens of the current turn.
    pub current_tokens: usize,
}

/// One turn's share of the conversation's task.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TurnContribution {
    pub message_index: usize,
    pub speaker: Speaker,
    /// The turn's own top bucket.
    pub bucket: BucketId,
    /// Its weight in the context (the weights of all earlier turns sum to 1).
    pub weight: f32,
}

/// What the decision says about the conversation (`conversation` in the JSON).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConversationReport {
    /// The conversation's task before this turn.
    pub task: BucketId,
    /// What the current turn alone says, and how sure.
    pub turn_bucket: BucketId,
    pub turn_confidence: f32,
    /// True when the current turn is clearly a new task and decides alone.
    pub new_task: bool,
    /// The current turn's share of the scores routed by (1 for a new task).
    pub current_weight: f32,
    pub turns: Vec<TurnContribution>,
}

/// The scores to route a conversation by.
#[derive(Debug, Clone)]
pub struct Blend {
    pub scores: BucketScores,
    /// For a follow-up: the bucket whose tier the decision may not go below.
    pub floor: Option<BucketId>,
    pub report: ConversationReport,
}

/// Blends the current turn's scores with the conversation's; `None` when there is no
/// context to speak of (no earlier user turn in the window). `rank` orders buckets by the
/// capability their primary target has (higher is more capable).
pub fn blend(
    settings: &ConversationPolicy,
    current: &BucketScores,
    conversation: &ConversationInput<'_>,
    rank: &dyn Fn(&BucketId) -> u8,
) -> Option<Blend> {
    let window = window(settings, &conversation.turns);
    if !window.iter().any(|(t, _)| t.speaker == Speaker::User) {
        return None;
    }
    let total: f32 = window.iter().map(|(_, w)| w).sum();
    let context = weighted_mean(window.iter().map(|(t, w)| (t.scores, w / total)));
    let task = context.first()?.bucket.clone();
    let turns: Vec<TurnContribution> = window
        .iter()
        .map(|(t, w)| TurnContribution {
            message_index: t.message_index,
            speaker: t.speaker,
            bucket: t.scores.bucket().clone(),
            weight: w / total,
        })
        .collect();
    let new_task = current.bucket() != &task
        && current.confidence() >= settings.new_task_confidence
        && conversation.current_tokens >= settings.new_task_min_tokens;
    let report = |current_weight| ConversationReport {
        task: task.clone(),
        turn_bucket: current.bucket().clone(),
        turn_confidence: current.confidence(),
        new_task,
        current_weight,
        turns: turns.clone(),
    };
    if new_task {
        return Some(Blend {
            scores: current.clone(),
            floor: None,
            report: report(1.0),
        });
    }
    let cw = settings.current_weight;
    let mut ranked = weighted_mean(
        [(current, cw)].into_iter().chain(
            window
                .iter()
                .map(|(t, w)| (t.scores, (1.0 - cw) * w / total)),
        ),
    );
    ranked.truncate(current.ranked.len().max(1));
    let context_confidence: f32 = window
        .iter()
        .map(|(t, w)| t.scores.confidence() * w / total)
        .sum();
    let winner = ranked.first().map(|s| s.bucket.clone());
    let scores = BucketScores {
        scorer: current.scorer,
        confidence: cw * current.confidence() + (1.0 - cw) * context_confidence,
        // A follow-up may be far from every archetype ("and then?"); the conversation is not.
        top_similarity: window
            .iter()
            .filter(|(t, _)| t.speaker == Speaker::User)
            .map(|(t, _)| t.scores.top_similarity)
            .fold(current.top_similarity, f32::max),
        agreeing: if winner.as_ref() == Some(current.bucket()) {
            current.agreeing
        } else {
            0
        },
        considered: current.considered,
        ranked,
    };
    // The most capable tier a user turn of the window needed, the task's when tied.
    let floor = window
        .iter()
        .filter(|(t, _)| t.speaker == Speaker::User)
        .map(|(t, _)| t.scores.bucket())
        .fold(task.clone(), |best, b| {
            if rank(b) > rank(&best) {
                b.clone()
            } else {
                best
            }
        });
    Some(Blend {
        scores,
        floor: Some(floor),
        report: report(cw),
    })
}

/// The earlier turns that count, newest first, with their unnormalised weights.
fn window<'t, 'a>(
    settings: &ConversationPolicy,
    turns: &'t [ContextTurn<'a>],
) -> Vec<(&'t ContextTurn<'a>, f32)> {
    let mut tokens = 0usize;
    let mut out = Vec::new();
    for turn in turns.iter().filter(|t| t.distance < settings.max_turns) {
        tokens = tokens.saturating_add(turn.tokens);
        if tokens > settings.max_context_tokens && !out.is_empty() {
            break;
        }
        let speaker_weight = match turn.speaker {
            Speaker::User => 1.0,
            Speaker::Assistant => settings.assistant_weight,
        };
        let distance = i32::try_from(turn.distance).unwrap_or(i32::MAX);
        let weight = settings.turn_decay.powi(distance) * speaker_weight;
        if weight > 0.0 {
            out.push((turn, weight));
        }
    }
    out
}

/// Σ weight × probability per bucket, highest first (ties to the smaller name).
fn weighted_mean<'a>(parts: impl IntoIterator<Item = (&'a BucketScores, f32)>) -> Vec<BucketScore> {
    let mut sums: Vec<BucketScore> = Vec::new();
    for (scores, weight) in parts {
        for s in &scores.ranked {
            match sums.iter_mut().find(|t| t.bucket == s.bucket) {
                Some(t) => t.score += weight * s.score,
                None => sums.push(BucketScore {
                    bucket: s.bucket.clone(),
                    score: weight * s.score,
                }),
            }
        }
    }
    sums.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.bucket.cmp(&b.bucket)));
    sums
}

#[cfg(test)]
mod tests;
