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
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ClassifyRequest, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn last_user_message_is_routed() {
        let r = parse(
            r#"{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"}, {"role": "user", "content": [{"type": "text", "text": "sum"}, {"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "these"}]}]}"#,
        )
        .unwrap();
        assert_eq!(r.routed_text().unwrap(), "sum\nthese");
        let input = r.into_input().unwrap();
        assert!(input.context.capabilities.contains("vision"));
        // "be brief" + "first" + "ok" + "sum" + "these" minus the routed "sum\nthese"
        assert_eq!(input.other_text_bytes, 8 + 5 + 2 + 3 + 5 - 9);
    }

    #[test]
    fn context_fields_reach_the_input() {
        let r = parse(
            r#"{"prompt": "hi", "tenant": "acme", "tier": "free", "priority": "high",
                "capabilities": ["json_mode"], "metadata": {"region": "eu"}}"#,
        )
        .unwrap();
        let input = r.into_input().unwrap();
        let c = &input.context;
        assert_eq!(c.tier.as_deref(), Some("free"));
        assert_eq!(c.priority, Priority::High);
        assert!(c.capabilities.contains("json_mode") && !c.capabilities.contains("vision"));
        assert_eq!(c.metadata["region"], "eu");
        assert_eq!(
            c.routing_key.as_deref(),
            Some("acme"),
            "tenant when no request id"
        );
        let with_id = parse(r#"{"prompt": "hi", "tenant": "acme", "request_id": "r1"}"#).unwrap();
        assert_eq!(
            with_id.into_input().unwrap().context.routing_key.as_deref(),
            Some("r1")
        );
    }

    #[test]
    fn unknown_field_is_named() {
        let e = parse(r#"{"prompt": "x", "promt": "y"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("promt"), "{e}");
    }

    #[test]
    fn prompt_and_messages_together_or_neither_are_refused() {
        let both =
            parse(r#"{"prompt": "x", "messages": [{"role": "user", "content": "y"}]}"#).unwrap();
        assert!(matches!(
            both.routed_text(),
            Err(ApiError::InvalidRequest(_))
        ));
        let neither = parse(r#"{"tenant": "t"}"#).unwrap();
        assert!(matches!(
            neither.routed_text(),
            Err(ApiError::InvalidRequest(_))
        ));
        let empty = parse(r#"{"prompt": "  \n"}"#).unwrap();
        assert!(matches!(empty.routed_text(), Err(ApiError::EmptyPrompt)));
        let no_user = parse(r#"{"messages": [{"role": "system", "content": "y"}]}"#).unwrap();
        assert!(matches!(
            no_user.routed_text(),
            Err(ApiError::InvalidRequest(_))
        ));
    }

    #[test]
    fn a_priority_of_the_wrong_type_is_a_data_error_not_malformed_json() {
        // Found by tests/it/hostile.rs: `"priority": 3` was answered `invalid_json`.
        for json in [
            r#"{"prompt": "x", "priority": 3}"#,
            r#"{"prompt": "x", "priority": true}"#,
            r#"{"prompt": "x", "priority": ["high"]}"#,
            r#"{"prompt": "x", "priority": "urgent"}"#,
        ] {
            let e = parse(json).unwrap_err();
            assert_eq!(
                e.classify(),
                serde_json::error::Category::Data,
                "{json}: {e}"
            );
        }
        let e = parse(r#"{"prompt": "x", "priority": "urgent"}"#).unwrap_err();
        assert!(e.to_string().contains("urgent"), "{e}");
        for (json, expected) in [
            (r#"{"prompt": "x", "priority": "low"}"#, Some(Priority::Low)),
            (r#"{"prompt": "x", "priority": null}"#, None),
            (r#"{"prompt": "x"}"#, None),
        ] {
            assert_eq!(parse(json).unwrap().priority, expected, "{json}");
        }
    }

    #[test]
    fn invisible_prompts_are_empty() {
        // Control characters, zero-width space / joiners, word joiner, BOM, bidi marks and
        // overrides, soft hyphen, a variation selector, a tag character: nothing to route.
        for prompt in [
            "\u{0}\u{1}\u{7f}",
            "\u{200B}\u{200C}\u{200D}",
            "\u{2060}\u{FEFF}",
            "\u{200E}\u{200F}\u{202E}\u{2066}\u{2069}",
            "\u{AD} \u{FE0F}\t\u{E0041}\n",
            "\u{85}\u{3000}\u{1680}",
        ] {
            let json = serde_json::json!({ "prompt": prompt }).to_string();
            let r = parse(&json).unwrap();
            assert!(
                matches!(r.into_input(), Err(ApiError::EmptyPrompt)),
                "{prompt:?} is empty"
            );
            let messages = serde_json::json!({"messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}]});
            let r = parse(&messages.to_string()).unwrap();
            assert!(
                matches!(r.into_input(), Err(ApiError::EmptyPrompt)),
                "{prompt:?}"
            );
        }
    }

    #[test]
    fn visible_text_among_invisible_characters_is_routed_as_sent() {
        // Right-to-left text, an RTL override around Latin text, a ZWJ emoji sequence: kept.
        for prompt in [
            "\u{202E}write a parser\u{202C}",
            "\u{200B}hi\u{200B}",
            "مرحبا كيف حالك",
            "\u{1F468}\u{200D}\u{1F469}",
        ] {
            let json = serde_json::json!({ "prompt": prompt }).to_string();
            let input = parse(&json).unwrap().into_input().unwrap();
            assert_eq!(input.text, prompt);
        }
        assert!(!is_blank("\u{200B}a"));
        assert!(is_blank(""));
    }
}
