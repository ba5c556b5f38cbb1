//! The index bundle on disk (`index.usearch` + `scoring.safetensors` + `manifest.json`) and
//! the loaded index that serves: HNSW search, the key → archetype table, and the scoring
//! model (head and calibration) fitted on the same examples.
//!
//! Writing is atomic (a sibling temp directory, fsynced, renamed into place). Loading refuses
//! anything it cannot verify: an unknown schema, another model's fingerprint, an index file
//! whose sha256 differs from the manifest (checked before usearch reads a byte).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::usearch_index::{HnswParams, UsearchIndex};
use super::{IndexError, VectorSearch};
use crate::scoring::{Calibration, FitRows, LinearHead, ScoringModel};
use crate::types::{ArchetypeId, BucketId, Embedding, ModelFingerprint, Neighbour};

/// 2: adds the scoring model (head + calibration).
pub const BUNDLE_SCHEMA_VERSION: u32 = 2;
pub const INDEX_FILE: &str = "index.usearch";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const HEAD_FILE: &str = "scoring.safetensors";

/// What a bundle holds and how it was built.
///
/// This struct is persisted: changes must stay backward-compatible or bump
/// [`BUNDLE_SCHEMA_VERSION`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    pub schema_version: u32,
    pub model: ModelFingerprint,
    pub dims: usize,
    /// Always `"cos"`: vectors are unit length and similarity is cosine.
    pub metric: String,
    /// Seconds since the Unix epoch.
    pub built_at: u64,
    /// sha256 over the examples (id, bucket, text) the index was built from.
    pub examples_sha256: String,
    /// sha256 of `index.usearch`.
    pub index_sha256: String,
    pub hnsw: HnswParams,
    /// Examples per bucket.
    pub counts: BTreeMap<BucketId, usize>,
    pub keys: Vec<IndexKey>,
    pub scoring: ScoringManifest,
}

/// The scoring model's part of the manifest; the head's weights are in [`HEAD_FILE`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringManifest {
    /// The head's class order.
    pub buckets: Vec<BucketId>,
    pub calibration: Calibration,
    /// sha256 of [`HEAD_FILE`]; `None` when the bundle has no head (fewer than two buckets).
    pub head_sha256: Option<String>,
}

impl BundleManifest {
    /// A short, stable name of this index's content: the same examples embedded by the same
    /// model give the same version, whatever the HNSW graph's random levels.
    pub fn version(&self) -> String {
        index_version(&self.model, &self.examples_sha256)
    }
}

/// The version an index of these examples built by this model has (or will have, once built).
pub fn index_version(model: &ModelFingerprint, examples_sha256: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(model.sha256.as_bytes());
    // Another routing window gives other vectors; the plain truncation keeps old versions.
    if let Some(window) = &model.window {
        hasher.update(window.as_bytes());
    }
    hasher.update(examples_sha256.as_bytes());
    format!("sha256:{}", &hex::encode(hasher.finalize())[..16])
}

/// One entry of the key table: usearch keys are positions in this list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexKey {
    pub key: u64,
    pub archetype_id: ArchetypeId,
    pub bucket: BucketId,
    /// sha256 of the example's text: lets a rebuild reuse this vector for unchanged text.
    pub text_sha256: String,
}

/// One labeled, embedded example ready to be indexed.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    pub id: ArchetypeId,
    pub bucket: BucketId,
    pub text_sha256: String,
    pub embedding: Embedding,
}

/// A searchable index with its manifest: what `decide` gets neighbours from.
pub struct LoadedIndex {
    manifest: BundleManifest,
    search: UsearchIndex,
    version: String,
    scoring: ScoringModel,
}

impl LoadedIndex {
    /// Builds an in-memory index (not yet saved) from embedded examples.
    /// `dims` is the model's: an index with no entries still knows the size of its queries.
    pub fn build(
        entries: &[IndexEntry],
        dims: usize,
        model: ModelFingerprint,
        examples_sha256: String,
        hnsw: HnswParams,
    ) -> Result<Self, IndexError> {
        let keyed: Vec<(u64, &Embedding)> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i as u64, &e.embedding))
            .collect();
        let search = UsearchIndex::build(dims, hnsw, &keyed)?;
        let mut counts = BTreeMap::new();
        for e in entries {
            *counts.entry(e.bucket.clone()).or_insert(0) += 1;
        }
        let manifest = BundleManifest {
            schema_version: BUNDLE_SCHEMA_VERSION,
            model,
            dims,
            metric: "cos".to_owned(),
            built_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            examples_sha256,
            // Filled in when saved: the file's hash is only known once it is written.
            index_sha256: String::new(),
            hnsw,
            counts,
            keys: entries
                .iter()
                .enumerate()
                .map(|(i, e)| IndexKey {
                    key: i as u64,
                    archetype_id: e.id.clone(),
                    bucket: e.bucket.clone(),
                    text_sha256: e.text_sha256.clone(),
                })
                .collect(),
            scoring: ScoringManifest {
                buckets: Vec::new(),
                calibration: Calibration::default(),
                head_sha256: None,
            },
        };
        let version = manifest.version();
        let mut index = Self {
            manifest,
            search,
            version,
            scoring: ScoringModel::empty(dims),
        };
        // Centroids and the kNN scorers work at once; `with_scoring` adds a fitted head.
        let (buckets, rows) =
            index.fit_rows_from(entries.iter().map(|e| (&e.bucket, e.embedding.as_slice())));
        let unfitted = ScoringModel::new(buckets, dims, &rows, None, Calibration::default())
            .map_err(|e| IndexError::Usearch(e.to_string()))?;
        index.set_scoring(unfitted);
        Ok(index)
    }

    /// The bucket order (sorted) and the labeled vectors of `entries`.
    fn fit_rows_from<'a>(
        &self,
        entries: impl Iterator<Item = (&'a BucketId, &'a [f32])> + Clone,
    ) -> (Vec<BucketId>, FitRows<'a>) {
        let buckets: Vec<BucketId> = self.manifest.counts.keys().cloned().collect();
        let position = |b: &BucketId| buckets.binary_search(b).ok();
        let mut rows = FitRows::default();
        for (bucket, v) in entries {
            if let Some(i) = position(bucket) {
                rows.vectors.push(v);
                rows.labels.push(i);
            }
        }
        (buckets, rows)
    }

    /// Installs a scoring model fitted on this index's examples (see `scoring::fit_scoring`).
    pub fn with_scoring(mut self, scoring: ScoringModel) -> Self {
        self.set_scoring(scoring);
        self
    }

    fn set_scoring(&mut self, scoring: ScoringModel) {
        self.manifest.scoring = ScoringManifest {
            buckets: scoring.buckets().to_vec(),
            calibration: scoring.calibration().clone(),
            // Filled in when saved.
            head_sha256: None,
        };
        self.scoring = scoring;
    }

    /// The scorers over this index's examples.
    pub fn scoring(&self) -> &ScoringModel {
        &self.scoring
    }

    /// Every stored vector with its bucket, in key order (for refitting the scorers).
    pub fn labeled_vectors(&self) -> Vec<(BucketId, Embedding)> {
        self.manifest
            .keys
            .iter()
            .filter_map(|k| Some((k.bucket.clone(), self.search.vector(k.key)?)))
            .collect()
    }

    pub fn manifest(&self) -> &BundleManifest {
        &self.manifest
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn len(&self) -> usize {
        self.search.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dims(&self) -> usize {
        self.manifest.dims
    }

    /// The `k` nearest archetypes, most similar first.
    pub fn neighbours(&self, query: &Embedding, k: usize) -> Result<Vec<Neighbour>, IndexError> {
        if self.is_empty() {
            // Every archetype deleted: nothing votes, and `decide` routes to the default bucket.
            return Ok(Vec::new());
        }
        let hits = self.search.search(query, k)?;
        Ok(hits
            .into_iter()
            .filter_map(|hit| {
                let entry = usize::try_from(hit.key)
                    .ok()
                    .and_then(|i| self.manifest.keys.get(i))?;
                Some(Neighbour {
                    id: entry.archetype_id.clone(),
                    bucket: entry.bucket.clone(),
                    similarity: hit.similarity,
                })
            })
            .collect())
    }

    /// Stored vectors by text hash, for rebuilds that only embed new or changed texts.
    pub fn vectors_by_text(&self) -> std::collections::HashMap<&str, Embedding> {
        self.manifest
            .keys
            .iter()
            .filter_map(|k| Some((k.text_sha256.as_str(), self.search.vector(k.key)?)))
            .collect()
    }

    /// The HNSW structure itself, for recall measurements against [`super::ExactIndex`].
    pub fn vector_search(&self) -> &UsearchIndex {
        &self.search
    }

    /// Writes the bundle into `dir` atomically: readers see the old bundle or the new one.
    pub fn save(&mut self, dir: &Path) -> Result<(), IndexError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| IndexError::Io { path, source }
        };
        let parent = dir.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(io(parent))?;
        let staging = tempfile::Builder::new()
            .prefix(".bundle-")
            .tempdir_in(parent)
            .map_err(io(parent))?;
        let index_path = staging.path().join(INDEX_FILE);
        self.search.save(&index_path)?;
        fsync(&index_path).map_err(io(&index_path))?;
        self.manifest.index_sha256 = sha256_file(&index_path).map_err(io(&index_path))?;
        self.manifest.scoring.head_sha256 = match self.scoring.head() {
            Some(head) => {
                let head_path = staging.path().join(HEAD_FILE);
                save_head(head, &head_path)?;
                fsync(&head_path).map_err(io(&head_path))?;
                Some(sha256_file(&head_path).map_err(io(&head_path))?)
            }
            None => None,
        };
        let manifest_path = staging.path().join(MANIFEST_FILE);
        let json = serde_json::to_vec_pretty(&self.manifest)
            .expect("a bundle manifest always serialises. This is a bug.");
        fs::write(&manifest_path, json).map_err(io(&manifest_path))?;
        fsync(&manifest_path).map_err(io(&manifest_path))?;

        // Swap directories: move the old bundle aside, move the new one in, drop the old.
        let staged = staging.keep();
        let old = parent.join(format!(".bundle-old-{}", std::process::id()));
        if dir.exists() {
            fs::rename(dir, &old).map_err(io(dir))?;
        }
        fs::rename(&staged, dir).map_err(io(dir))?;
        if old.exists() {
            fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        fsync(parent).map_err(io(parent))?;
        Ok(())
    }

    /// Loads and verifies a bundle built by `expected_model`.
    pub fn load(dir: &Path, expected_model: &ModelFingerprint) -> Result<Self, IndexError> {
        let refuse = |message: String| IndexError::Bundle {
            path: dir.display().to_string(),
            message,
        };
        let manifest_path = dir.join(MANIFEST_FILE);
        let index_path = dir.join(INDEX_FILE);
        let text = fs::read(&manifest_path).map_err(|source| IndexError::Io {
            path: manifest_path.display().to_string(),
            source,
        })?;
        let manifest: BundleManifest = serde_json::from_slice(&text)
            .map_err(|e| refuse(format!("{MANIFEST_FILE} is not a valid manifest: {e}")))?;
        if manifest.schema_version != BUNDLE_SCHEMA_VERSION {
            return Err(refuse(format!(
                "schema_version {} is not supported (this build reads {BUNDLE_SCHEMA_VERSION}); rebuild it with `router train`",
                manifest.schema_version
            )));
        }
        if manifest.model.window != expected_model.window
            && manifest.model.sha256 == expected_model.sha256
        {
            let name = |w: &Option<String>| w.clone().unwrap_or_else(|| "full".to_owned());
            return Err(refuse(format!(
                "it was built with routing window {}, but the router runs window {}; rebuild it with `router train` (or run with the same --window-head/--window-tail)",
                name(&manifest.model.window),
                name(&expected_model.window)
            )));
        }
        if &manifest.model != expected_model {
            return Err(refuse(format!(
                "it was built with model {}@{} (weights sha256 {}), but the router runs {}@{} (weights sha256 {}); rebuild it with `router train`",
                manifest.model.id,
                manifest.model.revision,
                manifest.model.sha256,
                expected_model.id,
                expected_model.revision,
                expected_model.sha256
            )));
        }
        if manifest.metric != "cos" {
            return Err(refuse(format!(
                "metric `{}` is not supported (expected cos)",
                manifest.metric
            )));
        }
        let actual = sha256_file(&index_path).map_err(|source| IndexError::Io {
            path: index_path.display().to_string(),
            source,
        })?;
        if actual != manifest.index_sha256 {
            return Err(refuse(format!(
                "{INDEX_FILE} has sha256 {actual} but the manifest says {}: the file is corrupt or from another bundle; rebuild it with `router train`",
                manifest.index_sha256
            )));
        }
        // Mapped, not copied: bundles are only ever replaced by renaming (see `save`), never
        // rewritten in place, so the mapping stays valid for as long as this index lives.
        let search = if manifest.keys.is_empty() {
            UsearchIndex::load(&index_path, manifest.dims, manifest.hnsw)?
        } else {
            UsearchIndex::view(&index_path, manifest.dims, manifest.hnsw)?
        };
        if search.len() != manifest.keys.len() {
            return Err(refuse(format!(
                "{INDEX_FILE} holds {} vectors but the manifest lists {} keys",
                search.len(),
                manifest.keys.len()
            )));
        }
        if manifest
            .keys
            .iter()
            .enumerate()
            .any(|(i, k)| k.key != i as u64)
        {
            return Err(refuse(
                "manifest keys are not numbered 0..n in order".to_owned(),
            ));
        }
        let head = match &manifest.scoring.head_sha256 {
            Some(expected) => {
                let head_path = dir.join(HEAD_FILE);
                let actual = sha256_file(&head_path).map_err(|source| IndexError::Io {
                    path: head_path.display().to_string(),
                    source,
                })?;
                if &actual != expected {
                    return Err(refuse(format!(
                        "{HEAD_FILE} has sha256 {actual} but the manifest says {expected}: the file is corrupt or from another bundle; rebuild it with `router train`"
                    )));
                }
                Some(
                    load_head(&head_path, manifest.dims, manifest.scoring.buckets.len())
                        .map_err(refuse)?,
                )
            }
            None => None,
        };
        let version = manifest.version();
        let mut index = Self {
            manifest,
            search,
            version,
            scoring: ScoringModel::empty(0),
        };
        let vectors = index.labeled_vectors();
        let (buckets, rows) = index.fit_rows_from(vectors.iter().map(|(b, v)| (b, v.as_slice())));
        if buckets != index.manifest.scoring.buckets && head.is_some() {
            return Err(refuse(
                "the scoring model's buckets differ from the index's; rebuild it with `router train`".to_owned(),
            ));
        }
        let scoring = ScoringModel::new(
            buckets,
            index.manifest.dims,
            &rows,
            head,
            index.manifest.scoring.calibration.clone(),
        )
        .map_err(|e| refuse(e.to_string()))?;
        let head_sha256 = index.manifest.scoring.head_sha256.clone();
        index.set_scoring(scoring);
        index.manifest.scoring.head_sha256 = head_sha256;
        Ok(index)
    }
}

/// Writes the head's weight (`classes × dims`) and bias as safetensors.
fn save_head(head: &LinearHead, path: &Path) -> Result<(), IndexError> {
    let device = candle_core::Device::Cpu;
    let to_index_error = |e: candle_core::Error| IndexError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    };
    let weight =
        candle_core::Tensor::from_slice(head.weight(), (head.classes(), head.dims()), &device)
            .map_err(to_index_error)?;
    let bias = candle_core::Tensor::from_slice(head.bias(), head.classes(), &device)
        .map_err(to_index_error)?;
    let tensors =
        std::collections::HashMap::from([("weight".to_owned(), weight), ("bias".to_owned(), bias)]);
    candle_core::safetensors::save(&tensors, path).map_err(to_index_error)
}

fn load_head(path: &Path, dims: usize, classes: usize) -> Result<LinearHead, String> {
    let tensors = candle_core::safetensors::load(path, &candle_core::Device::Cpu)
        .map_err(|e| format!("{HEAD_FILE} is unreadable: {e}"))?;
    let read = |name: &str| -> Result<Vec<f32>, String> {
        tensors
            .get(name)
            .ok_or_else(|| format!("{HEAD_FILE} has no `{name}`"))?
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| format!("{HEAD_FILE}: `{name}` is not f32: {e}"))
    };
    LinearHead::from_parts(dims, classes, read("weight")?, read("bias")?)
        .ok_or_else(|| format!("{HEAD_FILE} does not hold a {classes} × {dims} head"))
}

/// Whether `dir` looks like a bundle (has a manifest); says nothing about its validity.
pub fn bundle_exists(dir: &Path) -> bool {
    dir.join(MANIFEST_FILE).is_file()
}

pub fn default_bundle_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("index")
}

fn fsync(path: &Path) -> std::io::Result<()> {
    fs::File::open(path)?.sync_all()
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let bytes = fs::read(path)?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(sha: &str) -> ModelFingerprint {
        ModelFingerprint {
            id: "m".into(),
            revision: "r".into(),
            sha256: sha.into(),
            window: None,
        }
    }

    fn sample() -> LoadedIndex {
        let entries: Vec<IndexEntry> = (0..20)
            .map(|i| IndexEntry {
                id: ArchetypeId::new(&format!("a-{i}")),
                bucket: BucketId::new(if i % 2 == 0 { "even" } else { "odd" }),
                text_sha256: format!("t{i}"),
                embedding: Embedding::normalized(vec![1.0, i as f32, (i * i) as f32 % 7.0]),
            })
            .collect();
        LoadedIndex::build(
            &entries,
            3,
            fingerprint("aa"),
            "ex".into(),
            HnswParams::default(),
        )
        .unwrap()
    }

    #[test]
    fn manifest_round_trip_and_neighbours() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("index");
        let mut index = sample();
        index.save(&bundle).unwrap();
        let loaded = LoadedIndex::load(&bundle, &fingerprint("aa")).unwrap();
        assert_eq!(loaded.version(), index.version());
        assert_eq!(loaded.manifest().counts.values().sum::<usize>(), 20);
        let q = Embedding::normalized(vec![1.0, 4.0, 2.0]);
        assert_eq!(
            loaded.neighbours(&q, 3).unwrap(),
            index.neighbours(&q, 3).unwrap()
        );
        // Saving again over an existing bundle replaces it.
        index.save(&bundle).unwrap();
        assert!(LoadedIndex::load(&bundle, &fingerprint("aa")).is_ok());
    }

    #[test]
    fn an_empty_index_has_no_neighbours_and_survives_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = LoadedIndex::build(
            &[],
            3,
            fingerprint("aa"),
            "none".into(),
            HnswParams::default(),
        )
        .unwrap();
        let q = Embedding::normalized(vec![1.0, 0.0, 0.0]);
        assert!(index.neighbours(&q, 5).unwrap().is_empty());
        index.save(&dir.path().join("index")).unwrap();
        let loaded = LoadedIndex::load(&dir.path().join("index"), &fingerprint("aa")).unwrap();
        assert!(loaded.neighbours(&q, 5).unwrap().is_empty());
    }

    #[test]
    fn another_routing_window_is_refused_with_reason() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("index");
        sample().save(&bundle).unwrap();
        let windowed = ModelFingerprint {
            window: Some("head46+tail16".into()),
            ..fingerprint("aa")
        };
        let err = LoadedIndex::load(&bundle, &windowed)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("routing window full") && err.contains("head46+tail16"),
            "{err}"
        );
        assert_ne!(
            index_version(&windowed, "x"),
            index_version(&fingerprint("aa"), "x")
        );
    }

    #[test]
    fn foreign_model_is_refused_with_reason() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("index");
        sample().save(&bundle).unwrap();
        let err = LoadedIndex::load(&bundle, &fingerprint("bb"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("built with model") && err.contains("router train"),
            "{err}"
        );
    }

    #[test]
    fn corrupt_index_file_is_refused_before_usearch_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("index");
        sample().save(&bundle).unwrap();
        fs::write(bundle.join(INDEX_FILE), b"garbage").unwrap();
        let err = LoadedIndex::load(&bundle, &fingerprint("aa"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("corrupt"), "{err}");
    }
}
