//! Labeled data-set rows, kept as they are: what `eval` and `fit` measure on. Unlike an
//! `ExampleSet`, rows are neither deduplicated nor validated against each other; columns
//! other than the text, the label (`bucket` or `label`) and `oos` are there only for
//! `RowFilter`s (`split=train`, `fold=6,7`).

use std::path::Path;

use super::examples::{json_text, ArchetypeError, ExampleSet, Strictness};

type JsonObject = serde_json::Map<String, serde_json::Value>;

/// One labeled row of a data set, kept as it is (no deduplication): what `eval` measures on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabeledRow {
    pub text: String,
    pub label: String,
    /// The row's `oos` column where a data set marks out-of-scope rows by kind
    /// (`id-oos`, `ood-oos`; `none` in scope), for reports split by kind.
    pub oos_kind: Option<String>,
}

/// Keeps rows whose column `key` has one of `values` (compared as text):
/// `split=train`, `fold=6,7`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFilter {
    pub key: String,
    pub values: Vec<String>,
}

impl std::str::FromStr for RowFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (key, values) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}` is not KEY=VALUE[,VALUE...]"))?;
        Ok(Self {
            key: key.trim().to_owned(),
            values: values.split(',').map(|v| v.trim().to_owned()).collect(),
        })
    }
}

impl RowFilter {
    fn keeps(&self, row: &JsonObject) -> bool {
        let Some(value) = row.get(&self.key) else {
            return false;
        };
        self.values.contains(&json_text(value))
    }
}

/// Reads the rows of a labeled JSONL file that pass every filter (extra columns ignored;
/// the label in `bucket` or `label`). Rows are kept as they are, without deduplication.
pub fn read_labeled_rows(
    path: &Path,
    filters: &[RowFilter],
) -> Result<Vec<LabeledRow>, ArchetypeError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ArchetypeError::Io {
        path: origin.clone(),
        source,
    })?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let invalid = |message: String| ArchetypeError::Invalid {
            path: origin.clone(),
            line: i + 1,
            message,
        };
        let object: JsonObject = serde_json::from_str(line).map_err(|e| invalid(e.to_string()))?;
        if !filters.iter().all(|f| f.keeps(&object)) {
            continue;
        }
        rows.push(row_of(&object).map_err(invalid)?);
    }
    if rows.is_empty() {
        return Err(ArchetypeError::Empty { path: origin });
    }
    Ok(rows)
}

/// The row in one JSONL object, or what is missing from it.
fn row_of(object: &JsonObject) -> Result<LabeledRow, String> {
    let field = |name: &str| {
        object
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let text = field("text").ok_or_else(|| "missing string `text`".to_owned())?;
    let label = field("bucket")
        .or_else(|| field("label"))
        .ok_or_else(|| "missing `bucket` (or `label`)".to_owned())?;
    let oos_kind = field("oos").filter(|k| k != "none");
    Ok(LabeledRow {
        text,
        label,
        oos_kind,
    })
}

impl ExampleSet {
    /// Builds a training set from data-set rows (dataset strictness: repeats and conflicting
    /// labels are counted and skipped).
    pub fn from_rows(rows: &[LabeledRow]) -> Self {
        let mut set = Self::default();
        for row in rows {
            // Only empty texts fail in dataset mode; skipping them is what a data set needs.
            let _ = set.insert(None, &row.label, &row.text, Strictness::Dataset);
        }
        set
    }
}
