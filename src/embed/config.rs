//! The model's `config.json`: the subset of a BERT configuration both forward passes need, and
//! the check that refuses configurations they would compute wrongly.

use std::path::Path;

use super::EmbedError;

/// The subset of a BERT `config.json` the encoders need.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

fn default_act() -> String {
    "gelu".to_owned()
}

impl BertConfig {
    /// Reads and checks `config.json`; every failure names the file.
    pub fn read(path: &Path) -> Result<Self, EmbedError> {
        let config_err = |message: String| EmbedError::Config {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| config_err(e.to_string()))?;
        let config: Self = serde_json::from_str(&text).map_err(|e| config_err(e.to_string()))?;
        config.check().map_err(config_err)?;
        Ok(config)
    }

    /// Refuses configurations the forward passes would compute wrongly.
    pub fn check(&self) -> Result<(), String> {
        if self.hidden_act != "gelu" {
            return Err(format!(
                "hidden_act `{}` is not supported (expected gelu)",
                self.hidden_act
            ));
        }
        if self
            .position_embedding_type
            .as_deref()
            .is_some_and(|t| t != "absolute")
        {
            return Err("only absolute position embeddings are supported".to_owned());
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        Ok(())
    }
}
