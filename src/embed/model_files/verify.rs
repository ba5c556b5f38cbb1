//! Proving files are the pinned ones: sha256 against the manifest, before anything reads them
//! and before a fetched file is written into the cache (atomically).

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::error::ModelFilesError;
use super::manifest::{ModelManifest, REQUIRED_FILES};

/// Checks that `dir` holds every required file with the pinned content.
pub(super) fn verify_dir(manifest: &ModelManifest, dir: &Path) -> Result<(), ModelFilesError> {
    for name in REQUIRED_FILES {
        let path = dir.join(name);
        if !path.is_file() {
            return Err(ModelFilesError::Missing {
                path,
                files: REQUIRED_FILES.join(", "),
            });
        }
        let actual = sha256_file(&path)?;
        let expected = manifest.expected_hash(name);
        if actual != expected {
            return Err(ModelFilesError::HashMismatch {
                path,
                expected: expected.to_owned(),
                actual,
            });
        }
    }
    Ok(())
}

/// Checks `bytes` against the manifest, then writes them to `cache/name` via a temp file and rename.
pub(super) fn store_verified(
    manifest: &ModelManifest,
    cache: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<(), ModelFilesError> {
    let path = cache.join(name);
    let actual = hex::encode(Sha256::digest(bytes));
    let expected = manifest.expected_hash(name);
    if actual != expected {
        return Err(ModelFilesError::HashMismatch {
            path,
            expected: expected.to_owned(),
            actual,
        });
    }
    write_atomically(&path, bytes).map_err(|source| ModelFilesError::Io { path, source })
}

/// Writes a file so that readers see either the old content or the new one, never a torn write.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The lowercase hex sha256 of a file, read in 1 MiB chunks.
pub fn sha256_file(path: &Path) -> Result<String, ModelFilesError> {
    let io = |source| ModelFilesError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
