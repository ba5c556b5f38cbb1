//! Which earlier turns of a conversation the policy wants as context: at most
//! `[conversation] max_turns` of them, newest first, assistant turns only when they carry
//! weight (otherwise they are never embedded). The scoring of the blend itself is
//! `decide::conversation`'s.

use super::input::ClassifyInput;
use crate::decide::Policy;
use crate::types::Speaker;

/// Where an earlier turn sits in the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnPlace {
    pub speaker: Speaker,
    pub message_index: usize,
    /// Turns between it and the routed turn (0: the turn just before).
    pub distance: usize,
}

/// A text to retrieve for a request; `turn` is `None` for the routed turn itself.
#[derive(Debug, Clone)]
pub struct Needed {
    pub text: String,
    pub turn: Option<TurnPlace>,
}

/// The routed turn first, then the earlier turns in the policy's window, newest first.
pub fn texts_to_retrieve(policy: &Policy, input: &ClassifyInput) -> Vec<Needed> {
    let settings = &policy.conversation;
    let mut needed = vec![Needed {
        text: input.text.clone(),
        turn: None,
    }];
    let earlier = input
        .earlier
        .iter()
        .rev()
        .take(settings.max_turns)
        .enumerate()
        .filter(|(_, t)| t.speaker == Speaker::User || settings.uses_assistant_turns())
        .map(|(distance, t)| Needed {
            text: t.text.clone(),
            turn: Some(TurnPlace {
                speaker: t.speaker,
                message_index: t.message_index,
                distance,
            }),
        });
    needed.extend(earlier);
    needed
}
