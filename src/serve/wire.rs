//! Request and response shapes of the HTTP API. Unknown fields are rejected with a message that
//! names them (OpenAI message objects excepted: they carry many optional fields we ignore).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;
pub use crate::decide::Priority;
use crate::decide::RequestContext;
use crate::pipeline::{ClassifyInput, EarlierTurn, Speaker, MAX_EARLIER_TURNS};

/// Message part types that carry an image: OpenAI chat (`image_url`), OpenAI responses
/// (`input_image`) and Anthropic (`image`). Any of them makes the request need `vision`.
const IMAGE_PARTS: [&str; 3] = ["image_url", "input_image", "image"];
const VISION: &str = "vision";

/// `POST /classify`: a `prompt`, or OpenAI-style `messages` (the last user turn is routed).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub messages: Option<Vec<Message>>,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default, deserialize_with = "priority_word")]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct Message {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct Part {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

impl ClassifyRequest {
    /// The text to route: `prompt`, or the text of the last `user` message.
    pub fn routed_text(&self) -> Result<String, ApiError> {
        Ok(self.conversation()?.0)
    }

    /// The text to route and the turns before it (user and assistant, oldest first, at most
    /// [`MAX_EARLIER_TURNS`]; system and tool messages are not context).
    fn conversation(&self) -> Result<(String, Vec<EarlierTurn>), ApiError> {
        let (text, earlier) = match (&self.prompt, &self.messages) {
            (Some(_), Some(_)) => {
                return Err(ApiError::InvalidRequest(
                    "give `prompt` or `messages`, not both".into(),
                ))
            }
            (None, None) => {
                return Err(ApiError::InvalidRequest(
                    "missing `prompt` (or `messages`)".into(),
                ))
            }
            (Some(prompt), None) => (prompt.clone(), Vec::new()),
            (None, Some(messages)) => {
                let last_user =
                    messages
                        .iter()
                        .rposition(|m| m.role == "user")
                        .ok_or_else(|| {
                            ApiError::InvalidRequest(
                                "`messages` has no message with role `user`".into(),
                            )
                        })?;
                let mut earlier: Vec<EarlierTurn> = messages[..last_user]
                    .iter()
                    .enumerate()
                    .rev()
                    .filter_map(|(i, m)| {
                        let speaker = match m.role.as_str() {
                            "user" => Speaker::User,
                            "assistant" => Speaker::Assistant,
                            _ => return None,
                        };
                        let text = m.text();
                        (!text.trim().is_empty()).then_some(EarlierTurn {
                            speaker,
                            text,
                            message_index: i,
                        })
                    })
                    .take(MAX_EARLIER_TURNS)
                    .collect();
                earlier.reverse();
                (messages[last_user].text(), earlier)
            }
        };
        if is_blank(&text) {
            return Err(ApiError::EmptyPrompt);
        }
        Ok((text, earlier))
    }

    /// Whether any message has an image part.
    fn has_image(&self) -> bool {
        self.messages.iter().flatten().any(|m| match &m.content {
            Some(Content::Parts(parts)) => {
                parts.iter().any(|p| IMAGE_PARTS.contains(&p.kind.as_str()))
            }
            Some(Content::Text(_)) | None => false,
        })
    }

    /// Bytes of message text other than the routed turn (whose text is `routed` bytes).
    fn other_text_bytes(&self, routed: usize) -> usize {
        let all: usize = self
            .messages
            .iter()
            .flatten()
            .map(|m| match &m.content {
                None => 0,
                Some(Content::Text(text)) => text.len(),
                Some(Content::Parts(parts)) => parts
                    .iter()
                    .filter_map(|p| p.text.as_deref())
                    .map(str::len)
                    .sum(),
            })
            .sum();
        all.saturating_sub(routed)
    }

    pub fn into_input(self) -> Result<ClassifyInput, ApiError> {
        let (text, earlier) = self.conversation()?;
        let other_text_bytes = self.other_text_bytes(text.len());
        let mut capabilities: std::collections::BTreeSet<String> =
            self.capabilities.iter().flatten().cloned().collect();
        if self.has_image() {
            capabilities.insert(VISION.to_owned());
        }
        let routing_key = self.request_id.clone().or_else(|| self.tenant.clone());
        Ok(ClassifyInput {
            text,
            request_id: self.request_id,
            context: RequestContext {
                prompt_tokens: 0,
                tenant: self.tenant,
                tier: self.tier,
                priority: self.priority.unwrap_or_default(),
                capabilities,
                metadata: self.metadata.unwrap_or_default(),
                routing_key,
                utc_seconds: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs()),
            },
            other_text_bytes,
            earlier,
            // The handler's to set: it knows the caller.
            cache_scope: None,
        })
    }
}

impl Message {
    /// The message's text: a string, or its text parts joined by newlines.
    fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(Content::Text(text)) => text.clone(),
            Some(Content::Parts(parts)) => parts
                .iter()
                .filter(|p| p.kind == "text")
                .filter_map(|p| p.text.as_deref())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// `priority` read as a string first. serde_json reports an enum given a number or a boolean
/// as a syntax error ("expected value"), which would answer valid JSON with `invalid_json`;
/// this way a wrong type or an unknown word is a data error, answered `invalid_request`.
fn priority_word<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Priority>, D::Error> {
    let Some(word) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    Priority::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(&word)).map(Some)
}

/// Whether a text has nothing to route: only whitespace, control characters (`Cc`) and
/// characters that render as nothing (Unicode's `Default_Ignorable_Code_Point`: zero-width
/// spaces and joiners, bidi marks and overrides, the BOM, soft hyphens, variation selectors,
/// tags). Such a prompt would otherwise be embedded as `[CLS] [SEP]` and routed somewhere
/// with high confidence (it went to `chit_chat` at 0.94), so it is refused as empty instead.
pub fn is_blank(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_whitespace() || c.is_control() || is_default_ignorable(c))
}

/// Unicode 15.1 `DerivedCoreProperties.txt`, `Default_Ignorable_Code_Point`.
fn is_default_ignorable(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// `POST /classify/batch`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifyBatchRequest {
    pub requests: Vec<ClassifyRequest>,
}

/// `POST /embed`: one `text` or many `texts`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedRequest {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub texts: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EmbedResponse {
    pub embedding: Vec<f32>,
    pub tokens: usize,
}

#[cfg(test)]
mod tests;
