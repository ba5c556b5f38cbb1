//! What one request asks the router to classify, as the edges hand it to the pipeline.

use crate::decide::RequestContext;
use crate::embed::Embedded;
pub use crate::types::Speaker;

/// Earlier turns a request may carry into the pipeline, whatever the length of `messages`:
/// the policy's `[conversation] max_turns` picks from these, newest first.
pub const MAX_EARLIER_TURNS: usize = 16;

/// One turn before the routed one, as context for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlierTurn {
    pub speaker: Speaker,
    pub text: String,
    /// Position of the turn in the request's `messages`.
    pub message_index: usize,
}

/// One request to classify.
#[derive(Debug, Clone, Default)]
pub struct ClassifyInput {
    /// The text to route (the prompt, or the last user turn of a conversation).
    pub text: String,
    pub request_id: Option<String>,
    /// What the side rules see. `prompt_tokens` is ignored here: the pipeline counts it.
    pub context: RequestContext,
    /// Bytes of prompt text that are not routed (system message, earlier turns). Their tokens
    /// are estimated at the routed text's bytes per token and counted in `prompt_tokens`.
    pub other_text_bytes: usize,
    /// The conversation before `text`, oldest first, at most [`MAX_EARLIER_TURNS`]; empty for a
    /// bare prompt or a single user turn.
    pub earlier: Vec<EarlierTurn>,
    /// Whose retrieval-cache entries this request may read and write: the caller's identity
    /// where callers are told apart (client tokens), so a cache hit reveals nothing about
    /// other callers' prompts; `None` shares the cache among all callers.
    pub cache_scope: Option<String>,
}

impl ClassifyInput {
    /// A bare prompt with no request context (CLI, eval, benches).
    pub fn prompt(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }

    /// Tokens of the whole prompt: the routed text's (counted before truncation) plus the
    /// rest, estimated at the routed text's bytes per token.
    pub(super) fn whole_prompt_tokens(&self, embedded: &Embedded) -> usize {
        let routed_bytes = self.text.len().max(1);
        let others = (self.other_text_bytes as u128 * embedded.prompt_tokens as u128)
            .div_ceil(routed_bytes as u128);
        embedded
            .prompt_tokens
            .saturating_add(usize::try_from(others).unwrap_or(usize::MAX))
    }
}
