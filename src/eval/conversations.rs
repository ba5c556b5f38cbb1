//! Measuring conversations (`router eval --conversations FILE`): every user turn is routed
//! with the whole history before it, through the same pipeline as `/classify`, and the
//! report says how often a follow-up stays in the bucket the conversation started in, how
//! often it lands on a cheaper tier than the first turn, and the accuracy where turns are
//! labeled.
//!
//! Reads MT-Bench-101's format (`{"task", "history": [{"user", "bot"}, ...]}`) and plain
//! `{"messages": [{"role", "content"}, ...], "label"?, "task"?}` lines.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::decide::Policy;
use crate::pipeline::{ClassifyInput, EarlierTurn, Pipeline, PipelineError, Snapshot};
use crate::types::{BucketId, Speaker};

#[derive(Debug, thiserror::Error)]
pub enum ConversationEvalError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// User error: a line is neither MT-Bench-101's shape nor `{"messages": [...]}`.
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: String,
        line: usize,
        message: String,
    },
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// One conversation: user turns with the assistant's reply after each (the last may be
/// missing), an optional task name and optional labels per user turn.
#[derive(Debug, Clone)]
pub struct Dialogue {
    pub task: String,
    pub turns: Vec<(String, Option<String>)>,
    pub label: Option<String>,
}

#[derive(Deserialize)]
struct MtBenchTurn {
    user: String,
    #[serde(default)]
    bot: Option<String>,
}

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    history: Option<Vec<MtBenchTurn>>,
    #[serde(default)]
    messages: Option<Vec<PlainMessage>>,
    #[serde(default)]
    label: Option<String>,
}

#[derive(Deserialize)]
struct PlainMessage {
    role: String,
    content: String,
}

/// Reads dialogues in either shape.
pub fn read_dialogues(path: &Path) -> Result<Vec<Dialogue>, ConversationEvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConversationEvalError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let invalid = |line: usize, message: String| ConversationEvalError::Invalid {
        path: path.display().to_string(),
        line,
        message,
    };
    let mut dialogues = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(raw).map_err(|e| invalid(i + 1, e.to_string()))?;
        let turns = match (line.history, line.messages) {
            (Some(history), None) => history.into_iter().map(|t| (t.user, t.bot)).collect(),
            (None, Some(messages)) => pair_messages(messages),
            (Some(_), Some(_)) | (None, None) => {
                return Err(invalid(i + 1, "give `history` or `messages`".to_owned()))
            }
        };
        dialogues.push(Dialogue {
            task: line.task.unwrap_or_else(|| "all".to_owned()),
            turns,
            label: line.label,
        });
    }
    Ok(dialogues)
}

/// User turns with the assistant reply that follows each.
fn pair_messages(messages: Vec<PlainMessage>) -> Vec<(String, Option<String>)> {
    let mut turns: Vec<(String, Option<String>)> = Vec::new();
    for m in messages {
        match m.role.as_str() {
            "user" => turns.push((m.content, None)),
            "assistant" => {
                if let Some(last) = turns.last_mut() {
                    last.1 = Some(m.content);
                }
            }
            _ => {}
        }
    }
    turns
}

/// Follow-up figures of one task (or all).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FollowUps {
    pub dialogues: usize,
    pub follow_ups: usize,
    /// Share of follow-ups routed to the bucket the first turn was routed to.
    pub kept_first_bucket: f64,
    /// Share of follow-ups routed to a cheaper tier than the first turn.
    pub cheaper_tier: f64,
    /// Of those, how many carried no `conversation:` reason (must be 0).
    pub cheaper_without_reason: usize,
    /// Share of follow-ups routed to each bucket.
    pub buckets: BTreeMap<String, f64>,
    /// Accuracy of the labeled dialogues' turns, where labels are given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ConversationReport {
    pub overall: FollowUps,
    pub by_task: BTreeMap<String, FollowUps>,
    /// Tasks left out of `overall` (topic-shift dialogues change task on purpose).
    pub excluded_from_overall: Vec<String>,
}

#[derive(Default)]
struct Tally {
    dialogues: usize,
    follow_ups: usize,
    kept: usize,
    cheaper: usize,
    cheaper_without_reason: usize,
    buckets: BTreeMap<String, usize>,
    labeled: usize,
    correct: usize,
}

impl Tally {
    fn finish(&self) -> FollowUps {
        let share = |n: usize| n as f64 / self.follow_ups.max(1) as f64;
        FollowUps {
            dialogues: self.dialogues,
            follow_ups: self.follow_ups,
            kept_first_bucket: share(self.kept),
            cheaper_tier: share(self.cheaper),
            cheaper_without_reason: self.cheaper_without_reason,
            buckets: self
                .buckets
                .iter()
                .map(|(b, n)| (b.clone(), share(*n)))
                .collect(),
            accuracy: (self.labeled > 0).then(|| self.correct as f64 / self.labeled as f64),
        }
    }
}

/// Routes every user turn of every dialogue with its history; `exclude` names tasks left out
/// of the overall figures (e.g. `TS`, topic shifts).
pub fn evaluate(
    pipeline: &Pipeline,
    snapshot: &Arc<Snapshot>,
    dialogues: &[Dialogue],
    exclude: &[String],
    progress: &dyn Fn(usize, usize),
) -> Result<ConversationReport, ConversationEvalError> {
    let policy = &snapshot.policy;
    let mut overall = Tally::default();
    let mut by_task: BTreeMap<String, Tally> = BTreeMap::new();
    for (n, dialogue) in dialogues.iter().enumerate() {
        let routed = route_dialogue(pipeline, snapshot, dialogue)?;
        let task = by_task.entry(dialogue.task.clone()).or_default();
        let in_overall = !exclude.contains(&dialogue.task);
        for tally in [Some(task), in_overall.then_some(&mut overall)]
            .into_iter()
            .flatten()
        {
            tally_dialogue(tally, policy, &routed, dialogue.label.as_deref());
        }
        progress(n + 1, dialogues.len());
    }
    Ok(ConversationReport {
        overall: overall.finish(),
        by_task: by_task
            .iter()
            .map(|(t, v)| (t.clone(), v.finish()))
            .collect(),
        excluded_from_overall: exclude.to_vec(),
    })
}

/// Each user turn's bucket and whether a reason mentions the conversation.
fn route_dialogue(
    pipeline: &Pipeline,
    snapshot: &Arc<Snapshot>,
    dialogue: &Dialogue,
) -> Result<Vec<(BucketId, bool)>, ConversationEvalError> {
    let mut earlier: Vec<EarlierTurn> = Vec::new();
    let mut routed = Vec::with_capacity(dialogue.turns.len());
    for (user, bot) in &dialogue.turns {
        if user.trim().is_empty() {
            continue;
        }
        let input = ClassifyInput {
            earlier: earlier.clone(),
            ..ClassifyInput::prompt(user.clone())
        };
        let decision = pipeline.classify(snapshot, &input)?;
        let explained = decision
            .routing
            .reasons
            .iter()
            .any(|r| r.starts_with("conversation:"));
        routed.push((decision.routing.bucket, explained));
        let next = earlier.len() + 1;
        earlier.push(EarlierTurn {
            speaker: Speaker::User,
            text: user.clone(),
            message_index: next - 1,
        });
        if let Some(bot) = bot.as_ref().filter(|b| !b.trim().is_empty()) {
            earlier.push(EarlierTurn {
                speaker: Speaker::Assistant,
                text: bot.clone(),
                message_index: next,
            });
        }
    }
    Ok(routed)
}

fn tally_dialogue(
    t: &mut Tally,
    policy: &Policy,
    routed: &[(BucketId, bool)],
    label: Option<&str>,
) {
    let Some((first, _)) = routed.first() else {
        return;
    };
    t.dialogues += 1;
    let first_tier = policy.primary_tier(first);
    for (i, (bucket, explained)) in routed.iter().enumerate() {
        if let Some(label) = label {
            t.labeled += 1;
            t.correct += usize::from(bucket.as_str() == label);
        }
        if i == 0 {
            continue;
        }
        t.follow_ups += 1;
        t.kept += usize::from(bucket == first);
        *t.buckets.entry(bucket.to_string()).or_insert(0) += 1;
        if policy.primary_tier(bucket) < first_tier {
            t.cheaper += 1;
            t.cheaper_without_reason += usize::from(!explained);
        }
    }
}
