//! What can go wrong finding, verifying or fetching the model's files.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelFilesError {
    /// User error: the manifest is malformed.
    #[error("model manifest {origin}: {message}")]
    Manifest { origin: String, message: String },
    /// User error: a file is absent from a directory the user named.
    #[error("model file {path} is missing; fetch the model with `router model fetch` or point --model-dir at a directory holding {files}")]
    Missing { path: PathBuf, files: String },
    /// User or runtime error: a file's content is not the pinned one.
    #[error("model file {path} has sha256 {actual}, but the manifest pins {expected}; delete it and run `router model fetch` (or fix --model-dir)")]
    HashMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// Runtime error: reading or writing model files failed.
    #[error("model file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Runtime error: no source could provide verified files.
    #[error("could not obtain model {id}@{revision}: {attempts}. Put the files in {cache} or pass --model-dir")]
    Unavailable {
        id: String,
        revision: String,
        cache: PathBuf,
        attempts: String,
    },
}
