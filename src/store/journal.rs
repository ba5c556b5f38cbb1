//! The embedded change log: append-only JSONL in the data directory, fsynced before a change
//! is acknowledged, so an acknowledged example survives `kill -9`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::{JournalEntry, StoreError};

pub const JOURNAL_FILE: &str = "archetypes.journal.jsonl";

/// Appends `entries` durably (write + fsync, and the directory entry of a new file).
pub fn append(journal_path: &Path, entries: &[JournalEntry]) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let io = |source| StoreError::Io {
        path: journal_path.display().to_string(),
        source,
    };
    let dir = journal_path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let created = !journal_path.exists();
    let mut text = String::new();
    for entry in entries {
        text.push_str(
            &serde_json::to_string(entry).expect("journal entries serialise. This is a bug."),
        );
        text.push('\n');
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal_path)
        .map_err(io)?;
    let before = file.metadata().map_err(io)?.len();
    // Durable before acknowledged: the caller answers only after this returns.
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        // Leave no partial line for the next append to glue onto.
        let _ = file.set_len(before).and_then(|()| file.sync_all());
        return Err(io(e));
    }
    if created {
        // A new file's directory entry must be durable too.
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

/// Every entry of the journal, in order (none when it does not exist yet).
pub fn read(journal_path: &Path) -> Result<Vec<JournalEntry>, StoreError> {
    if !journal_path.is_file() {
        return Ok(Vec::new());
    }
    let path = journal_path.display().to_string();
    let text = std::fs::read_to_string(journal_path).map_err(|source| StoreError::Io {
        path: path.clone(),
        source,
    })?;
    let lines: Vec<&str> = text.lines().collect();
    let mut entries = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(entry) => entries.push(entry),
            // A torn last line is a write that crashed before its fsync: never acknowledged.
            // Cut it off, so the next append does not glue a good entry onto it.
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {
                tracing::warn!(path, line = i + 1, "dropping a torn last journal line");
                let keep = text.rfind('\n').map_or(0, |n| n + 1) as u64;
                OpenOptions::new()
                    .write(true)
                    .open(journal_path)
                    .and_then(|f| f.set_len(keep).and_then(|()| f.sync_all()))
                    .map_err(|source| StoreError::Io {
                        path: path.clone(),
                        source,
                    })?;
                break;
            }
            Err(e) => {
                return Err(StoreError::Journal {
                    path,
                    line: i + 1,
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(entries)
}
