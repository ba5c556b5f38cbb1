//! The routing window: which tokens of a long prompt the model sees.
//!
//! The encoder's cost grows faster than linearly with length (attention is quadratic in it), so
//! a long prompt is not embedded whole by default. Instructions sit at either end of a long
//! prompt ("Summarise this: <passage>", "<passage> What year was it built?"), so
//! a long prompt is routed from its first and last word pieces: `[CLS] head… tail… [SEP]`.
//! A prompt that fits the window is embedded whole, exactly as sentence-transformers does.

use std::ops::Range;

/// At most `head + tail` tokens of a prompt ([CLS] and [SEP] count against the head): the
/// first word pieces and the last `tail`. `head = 256, tail = 0` is sentence-transformers'
/// truncation to the model's 256 tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub head: usize,
    pub tail: usize,
}

impl Window {
    /// The default, 64 tokens: keeps any prompt near the 10 ms budget on two cores, and on
    /// Dolly's long prompts routes as well as the whole 256 tokens (README, "The forward pass
    /// and the routing window").
    pub const DEFAULT: Self = Self { head: 48, tail: 16 };

    /// The model's whole input: the first 256 tokens, like sentence-transformers.
    pub const FULL: Self = Self { head: 256, tail: 0 };

    /// Word pieces kept from the start and from the end of a truncated prompt, for a model of
    /// `max_seq_length` tokens ([CLS] and [SEP] included).
    fn budgets(self, max_seq_length: usize) -> (usize, usize) {
        let pieces = self
            .head
            .saturating_add(self.tail)
            .min(max_seq_length)
            .saturating_sub(2);
        let tail = self.tail.min(pieces);
        (pieces - tail, tail)
    }

    /// Word pieces kept at most.
    pub fn max_pieces(self, max_seq_length: usize) -> usize {
        let (head, tail) = self.budgets(max_seq_length);
        head + tail
    }

    /// Word pieces kept from the end of a truncated prompt.
    pub fn tail_pieces(self, max_seq_length: usize) -> usize {
        self.budgets(max_seq_length).1
    }

    /// Which of a prompt's `pieces` word pieces the model sees: a head range and a tail range
    /// (empty when the prompt fits).
    pub fn select(self, pieces: usize, max_seq_length: usize) -> (Range<usize>, Range<usize>) {
        let (head, tail) = self.budgets(max_seq_length);
        if pieces <= head + tail {
            return (0..pieces, pieces..pieces);
        }
        (0..head, pieces - tail..pieces)
    }

    /// What the fingerprint records: `None` when the window is the model's plain truncation
    /// (so bundles built before windows existed stay valid), else `head+tail` in word pieces.
    pub fn tag(self, max_seq_length: usize) -> Option<String> {
        let (head, tail) = self.budgets(max_seq_length);
        (head + tail + 2 < max_seq_length || tail > 0).then(|| format!("head{head}+tail{tail}"))
    }
}

impl Default for Window {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_prompts_are_kept_whole() {
        let w = Window { head: 10, tail: 4 };
        assert_eq!(w.select(0, 256), (0..0, 0..0));
        assert_eq!(w.select(12, 256), (0..12, 12..12));
        assert_eq!(Window::FULL.select(254, 256), (0..254, 254..254));
    }

    #[test]
    fn long_prompts_keep_head_and_tail() {
        // 14 tokens: [CLS] + 8 head pieces + 4 tail pieces + [SEP].
        let w = Window { head: 10, tail: 4 };
        assert_eq!(w.select(13, 256), (0..8, 9..13));
        assert_eq!(w.select(1000, 256), (0..8, 996..1000));
        assert_eq!(w.max_pieces(256), 12);
        assert_eq!(w.tail_pieces(256), 4);
    }

    #[test]
    fn full_window_is_the_models_truncation() {
        assert_eq!(Window::FULL.select(1000, 256), (0..254, 1000..1000));
        assert_eq!(Window::FULL.tag(256), None);
        assert_eq!(Window { head: 300, tail: 0 }.tag(256), None);
    }

    #[test]
    fn windows_are_clamped_to_the_model() {
        // The tail never exceeds what the model can see; the head gives way first.
        let w = Window {
            head: 200,
            tail: 100,
        };
        assert_eq!(w.select(1000, 256), (0..154, 900..1000));
        let w = Window { head: 0, tail: 300 };
        assert_eq!(w.select(1000, 256), (0..0, 746..1000));
        assert_eq!(Window { head: 1, tail: 0 }.select(5, 256), (0..0, 5..5));
    }

    #[test]
    fn other_windows_are_tagged_for_the_fingerprint() {
        assert_eq!(
            Window { head: 96, tail: 32 }.tag(256).as_deref(),
            Some("head94+tail32")
        );
        assert_eq!(
            Window { head: 128, tail: 0 }.tag(256).as_deref(),
            Some("head126+tail0")
        );
        assert_ne!(
            Window { head: 64, tail: 64 }.tag(256),
            Window { head: 96, tail: 32 }.tag(256)
        );
    }
}
