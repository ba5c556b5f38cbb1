//! The tokenize stage: a prompt → the token ids the model sees, `[CLS] head… tail… [SEP]`
//! under the routing [`Window`], and the whole prompt's token count.
//!
//! The shipped tokenizer.json pads and truncates at 128 tokens; neither is applied here (no
//! padding for one text; truncation is the window's, after counting the whole prompt). A huge
//! prompt is tokenized in bounded windows of bytes from its start and from its end, widened
//! only while they hold too few tokens, and its whole count is extrapolated from the first.

use std::path::Path;

use tokenizers::Tokenizer;

use super::window::Window;
use super::EmbedError;

/// Bytes of a long prompt that are tokenized first. 256 tokens of ordinary text fit in well
/// under this, so a 1 MB prompt costs well under a millisecond of tokenizing, not hundreds of
/// ms (tokenizing costs about 0.25 ms per KiB here: 16 KiB took 4 ms of the 10 ms budget).
/// Longer prompts get an extrapolated token count.
const TOKENIZE_WINDOW_BYTES: usize = 4 * 1024;

/// Bytes of a long prompt's end tokenized first for the window's tail (a few dozen tokens).
const TAIL_WINDOW_BYTES: usize = 1024;

/// Tokens a window must hold beyond the model's maximum before the rest of the prompt is
/// ignored: the window's last word may be cut, and must stay out of the model's tokens.
const WINDOW_MARGIN_TOKENS: usize = 16;

/// Bytes a text is counted at, in a batch's bound on tokens, per token of the routing window
/// when it is longer: English runs 4-5 bytes a word piece, so 8 overstates the window's
/// forward pass and leaves room for tokenizing the text's first and last few KiB.
const BYTES_PER_WINDOW_TOKEN: usize = 8;

/// How far back from the window's end to look for whitespace to cut at.
const WINDOW_CUT_SEARCH_BYTES: usize = 256;

/// Token ids of one text, already cut to the model's window.
pub struct Tokenized {
    /// What the model sees, [CLS] and [SEP] included.
    pub ids: Vec<u32>,
    /// Tokens of the whole prompt, [CLS] and [SEP] included (extrapolated for huge prompts).
    pub prompt_tokens: usize,
    /// Whether `ids` is only part of the prompt.
    pub truncated: bool,
}

/// The model's tokenizer with the routing window applied.
pub struct PromptTokenizer {
    tokenizer: Tokenizer,
    window: Window,
    max_seq_length: usize,
    cls_id: u32,
    sep_id: u32,
}

impl PromptTokenizer {
    /// Loads `tokenizer.json` for a model of `max_seq_length` tokens seen through `window`.
    pub fn load(path: &Path, window: Window, max_seq_length: usize) -> Result<Self, EmbedError> {
        let mut tokenizer =
            Tokenizer::from_file(path).map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let special = |token: &str| {
            tokenizer
                .token_to_id(token)
                .ok_or_else(|| EmbedError::Tokenizer(format!("tokenizer has no {token} token")))
        };
        let cls_id = special("[CLS]")?;
        let sep_id = special("[SEP]")?;
        Ok(Self {
            tokenizer,
            window,
            max_seq_length,
            cls_id,
            sep_id,
        })
    }

    pub fn window(&self) -> Window {
        self.window
    }

    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// What `text` costs a forward pass, in bytes of ordinary text (see
    /// `Embedder::pass_cost`).
    pub fn pass_cost(&self, text: &str) -> usize {
        let max_pieces = self.window.max_pieces(self.max_seq_length);
        let tail = self.window.tail_pieces(self.max_seq_length);
        pass_cost(
            text,
            max_pieces + 2,
            // The pieces at which `tokenize` and `tail_of` stop widening.
            max_pieces.max(self.max_seq_length) + WINDOW_MARGIN_TOKENS,
            if tail == 0 {
                0
            } else {
                tail + WINDOW_MARGIN_TOKENS
            },
        )
    }

    /// Token ids with [CLS]/[SEP]; a prompt longer than the routing window keeps its first and
    /// last word pieces ([`Window`]; the full window truncates like sentence-transformers).
    /// Huge prompts are tokenized in bounded windows of bytes.
    pub fn tokenize(&self, text: &str) -> Result<Tokenized, EmbedError> {
        if text.trim().is_empty() {
            return Err(EmbedError::EmptyText);
        }
        let max_pieces = self.window.max_pieces(self.max_seq_length);
        let mut window_bytes = TOKENIZE_WINDOW_BYTES;
        loop {
            let window = window_prefix(text, window_bytes);
            let pieces = self.encode(window)?;
            if window.len() == text.len() {
                return Ok(self.assemble(&pieces, &[], pieces.len()));
            }
            // The window overflows the model with a margin (its last word may be cut): the
            // rest of the prompt only changes the count, which is extrapolated, and the tail.
            if pieces.len() >= max_pieces.max(self.max_seq_length) + WINDOW_MARGIN_TOKENS {
                let scale = text.len() as f64 / window.len() as f64;
                let count = (pieces.len() as f64 * scale).ceil() as usize;
                let tail = self.tail_of(text)?;
                return Ok(self.assemble(&pieces, &tail, count));
            }
            // Few tokens per byte (long unbroken runs): a wider window, never the whole text
            // at once.
            window_bytes = window_bytes.saturating_mul(4);
        }
    }

    /// The last word pieces of a prompt too long to tokenize whole (at least the window's
    /// tail, cut-word margin excluded).
    fn tail_of(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let want = self.window.tail_pieces(self.max_seq_length);
        if want == 0 {
            return Ok(Vec::new());
        }
        let mut window_bytes = TAIL_WINDOW_BYTES;
        loop {
            let window = window_suffix(text, window_bytes);
            let mut pieces = self.encode(window)?;
            if window.len() == text.len() || pieces.len() >= want + WINDOW_MARGIN_TOKENS {
                pieces.drain(..pieces.len() - want.min(pieces.len()));
                return Ok(pieces);
            }
            window_bytes = window_bytes.saturating_mul(4);
        }
    }

    /// Word pieces of `text`, no special tokens.
    fn encode(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let encoding = self
            .tokenizer
            .encode_fast(text, false)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// `[CLS] head tail [SEP]` from a prompt of `count` word pieces whose first are `pieces`; the
    /// window's tail comes from the end of `pieces`, or from `tail` (the prompt's last pieces)
    /// when `pieces` is only a prefix.
    fn assemble(&self, pieces: &[u32], tail: &[u32], count: usize) -> Tokenized {
        let (head_range, tail_range) = self.window.select(count, self.max_seq_length);
        let tail = if tail.is_empty() {
            &pieces[tail_range.start.min(pieces.len())..]
        } else {
            &tail[tail.len() - tail_range.len().min(tail.len())..]
        };
        let head = &pieces[..head_range.end.min(pieces.len())];
        let mut ids = Vec::with_capacity(head.len() + tail.len() + 2);
        ids.push(self.cls_id);
        ids.extend_from_slice(head);
        ids.extend_from_slice(tail);
        ids.push(self.sep_id);
        Tokenized {
            truncated: ids.len() < count + 2,
            ids,
            prompt_tokens: count + 2,
        }
    }
}

/// What `text` costs a pass seen through a window of `window_tokens`. Up to the window's worth
/// of bytes, its length. A longer text counts at the window's worth when tokenizing it stops
/// at its first and last few KiB: each word is at least one word piece, so `head_words` words
/// in the first window of bytes and `tail_words` in the last bound the work. Otherwise (few
/// word breaks: the windows widen, up to all of the text, more than once) at its length, so a
/// huge one still goes alone.
fn pass_cost(text: &str, window_tokens: usize, head_words: usize, tail_words: usize) -> usize {
    let window = window_tokens.saturating_mul(BYTES_PER_WINDOW_TOKEN);
    if text.len() <= window {
        return text.len();
    }
    let words = |part: &str, needed: usize| part.split_whitespace().take(needed).count() >= needed;
    let whole_at_once = text.len() <= TOKENIZE_WINDOW_BYTES;
    let bounded = whole_at_once
        || (words(window_prefix(text, TOKENIZE_WINDOW_BYTES), head_words)
            && words(window_suffix(text, TAIL_WINDOW_BYTES), tail_words));
    if bounded {
        window
    } else {
        text.len()
    }
}

/// The first `max_bytes` of `text`, cut at whitespace so no word is split (a split word would
/// tokenize differently), or the whole text when it is short or has no whitespace to cut at.
fn window_prefix(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let boundary_at_or_before = |mut i: usize| {
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let end = boundary_at_or_before(max_bytes);
    // Prefer whitespace near the end of the window; without any, cut mid-word (the caller's
    // token margin keeps a split word out of what the model sees).
    let search_from = boundary_at_or_before(end.saturating_sub(WINDOW_CUT_SEARCH_BYTES));
    match text[search_from..end].rfind(char::is_whitespace) {
        Some(i) if search_from + i > 0 => &text[..search_from + i],
        _ => &text[..end],
    }
}

/// The last `max_bytes` of `text`, started after whitespace so no word is split, or the whole
/// text when it is short or has no whitespace to start at.
fn window_suffix(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let boundary_at_or_after = |mut i: usize| {
        while !text.is_char_boundary(i) {
            i += 1;
        }
        i
    };
    let start = boundary_at_or_after(text.len() - max_bytes);
    let search_to = boundary_at_or_after((start + WINDOW_CUT_SEARCH_BYTES).min(text.len()));
    match text[start..search_to].find(char::is_whitespace) {
        Some(i) => &text[start + i..],
        None => &text[start..],
    }
}

#[cfg(test)]
mod tests {
    use super::{pass_cost, window_prefix, window_suffix};

    #[test]
    fn a_text_longer_than_the_window_counts_at_the_windows_worth() {
        // A 64-token window (512 bytes); tokenizing stops once 272 pieces are in the first
        // 4 KiB and 32 in the last 1 KiB.
        let cost = |text: &str| pass_cost(text, 64, 272, 32);
        let prose = |bytes: usize| "word ".repeat(bytes / 5);
        assert_eq!(cost(&prose(100)), 100);
        assert_eq!(cost(&prose(3_000)), 512);
        // Tokenized whole, however few its words: 4 KiB at most.
        assert_eq!(cost(&"x".repeat(4_000)), 512);
        // Long prose: only its first and last few KiB are tokenized.
        assert_eq!(cost(&prose(1 << 20)), 512);
        // Few word breaks: tokenized further, up to all of it, so it counts whole.
        let unbroken = "x".repeat(1 << 20);
        assert_eq!(cost(&unbroken), 1 << 20);
        let prose_then_unbroken = prose(8 * 1024) + &unbroken;
        assert_eq!(cost(&prose_then_unbroken), prose_then_unbroken.len());
        // The model's whole 256 tokens, no tail.
        assert_eq!(pass_cost(&prose(3_000), 256, 272, 0), 2_048);
    }

    #[test]
    fn suffix_starts_at_whitespace_and_char_boundary() {
        assert_eq!(window_suffix("short", 10), "short");
        assert_eq!(window_suffix("aaa bbb ccc", 9), " bbb ccc");
        assert_eq!(window_suffix("ééééé ééééé", 12), " ééééé");
        assert_eq!(window_suffix("nowhitespaceatall", 5), "atall");
    }

    #[test]
    fn window_cuts_at_whitespace_and_char_boundary() {
        assert_eq!(window_prefix("short", 10), "short");
        assert_eq!(window_prefix("aaa bbb ccc", 9), "aaa bbb");
        assert_eq!(window_prefix("ééééé ééééé", 12), "ééééé");
        assert_eq!(window_prefix("nowhitespaceatall", 5), "nowhi");
        let long_word = format!("x {}", "y".repeat(1000));
        assert_eq!(
            window_prefix(&long_word, 600).len(),
            600,
            "a lone early space is not a cut point"
        );
    }
}
