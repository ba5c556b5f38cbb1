//! The conversation blend on hand-made scores: follow-ups stay, new tasks move, the context
//! is bounded, assistant turns alone never decide.

use super::*;
use crate::types::ScorerKind;

fn scores(pairs: &[(&str, f32)], confidence: f32) -> BucketScores {
    let mut ranked: Vec<BucketScore> = pairs
        .iter()
        .map(|(b, s)| BucketScore {
            bucket: BucketId::new(b),
            score: *s,
        })
        .collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
    BucketScores {
        scorer: ScorerKind::Combined,
        ranked,
        confidence,
        top_similarity: 0.5,
        agreeing: 5,
        considered: 10,
    }
}

fn rank(b: &BucketId) -> u8 {
    match b.as_str() {
        "chit_chat" => 0,
        "code" => 1,
        _ => 2,
    }
}

fn turn(i: usize, speaker: Speaker, s: &BucketScores) -> ContextTurn<'_> {
    ContextTurn {
        message_index: i,
        speaker,
        distance: 0,
        scores: s,
        tokens: 12,
    }
}

#[test]
fn a_short_follow_up_stays_with_the_conversations_task_and_tier() {
    let code = scores(&[("code", 0.9), ("chit_chat", 0.1)], 0.9);
    let shorter = scores(&[("chit_chat", 0.7), ("code", 0.3)], 0.7);
    let input = ConversationInput {
        turns: vec![turn(0, Speaker::User, &code)],
        current_tokens: 5,
    };
    let b = blend(&ConversationPolicy::default(), &shorter, &input, &rank).unwrap();
    assert_eq!(b.scores.bucket().as_str(), "code");
    assert_eq!(b.floor.as_ref().map(BucketId::as_str), Some("code"));
    assert!(!b.report.new_task);
    assert_eq!(b.report.task.as_str(), "code");
    assert_eq!(b.report.turn_bucket.as_str(), "chit_chat");
    assert_eq!(b.report.turns.len(), 1);
    assert!((b.report.turns[0].weight - 1.0).abs() < 1e-6);
}

#[test]
fn a_confident_self_contained_turn_is_a_new_task() {
    let poem = scores(&[("creative_writing", 0.95), ("code", 0.05)], 0.95);
    let sql = scores(&[("code", 0.98), ("creative_writing", 0.02)], 0.98);
    let input = ConversationInput {
        turns: vec![turn(0, Speaker::User, &poem)],
        current_tokens: 16,
    };
    let b = blend(&ConversationPolicy::default(), &sql, &input, &rank).unwrap();
    assert!(b.report.new_task);
    assert_eq!(b.scores.bucket().as_str(), "code");
    assert!(b.floor.is_none());
    // The same words in fewer tokens than the policy asks for do not move it.
    let short = ConversationInput {
        current_tokens: 4,
        ..input
    };
    let b = blend(&ConversationPolicy::default(), &sql, &short, &rank).unwrap();
    assert!(!b.report.new_task);
}

#[test]
fn assistant_turns_alone_never_decide() {
    let code = scores(&[("code", 0.9), ("chit_chat", 0.1)], 0.9);
    let hi = scores(&[("chit_chat", 0.9), ("code", 0.1)], 0.9);
    let settings = ConversationPolicy {
        assistant_weight: 0.5,
        ..ConversationPolicy::default()
    };
    let only_assistant = ConversationInput {
        turns: vec![turn(1, Speaker::Assistant, &code)],
        current_tokens: 3,
    };
    assert!(blend(&settings, &hi, &only_assistant, &rank).is_none());
    // With the default weight 0 an assistant turn does not count even beside a user turn.
    let both = ConversationInput {
        turns: vec![
            turn(1, Speaker::Assistant, &hi),
            ContextTurn {
                distance: 1,
                ..turn(0, Speaker::User, &code)
            },
        ],
        current_tokens: 3,
    };
    let b = blend(&ConversationPolicy::default(), &hi, &both, &rank).unwrap();
    assert_eq!(b.report.turns.len(), 1);
    assert_eq!(b.report.turns[0].speaker, Speaker::User);
}

#[test]
fn the_context_is_cut_to_the_window_whatever_the_length_of_the_conversation() {
    let code = scores(&[("code", 0.9), ("chit_chat", 0.1)], 0.9);
    let hi = scores(&[("chit_chat", 0.9), ("code", 0.1)], 0.9);
    let many: Vec<ContextTurn<'_>> = (0..10_000)
        .rev()
        .enumerate()
        .map(|(distance, i)| ContextTurn {
            distance,
            ..turn(i, Speaker::User, &code)
        })
        .collect();
    let settings = ConversationPolicy::default();
    let input = ConversationInput {
        turns: many,
        current_tokens: 3,
    };
    let b = blend(&settings, &hi, &input, &rank).unwrap();
    assert_eq!(b.report.turns.len(), settings.max_turns);
    assert_eq!(b.report.turns[0].message_index, 9_999, "newest first");
    let tight = ConversationPolicy {
        max_context_tokens: 30,
        ..settings
    };
    let b = blend(&tight, &hi, &input, &rank).unwrap();
    assert_eq!(
        b.report.turns.len(),
        2,
        "12 + 12 tokens fit in 30, a third does not"
    );
}

#[test]
fn settings_out_of_range_are_named() {
    let bad = ConversationPolicy {
        current_weight: 1.5,
        max_turns: 1000,
        ..ConversationPolicy::default()
    };
    let problems = bad.problems().join("; ");
    assert!(
        problems.contains("current_weight") && problems.contains("max_turns"),
        "{problems}"
    );
}
