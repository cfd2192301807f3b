//! The id of a rollup writer: one per WAL directory, kept in a file next to the segments, so a
//! replay of that WAL (after a restart) writes its partials under the same keys, and two
//! replicas (two WAL directories) never share one.

use std::io::Write;
use std::path::Path;

use uuid::Uuid;

/// The file in the WAL directory (the WAL ignores files that are not segments).
pub const FILE_NAME: &str = "rollup-writer.id";

/// The id stored in `wal_dir`, if the flusher created it already. Only the flusher creates it
/// ([`load_or_create`]): two creators at once could each take an id of their own.
pub fn load(wal_dir: &Path) -> std::io::Result<Option<Uuid>> {
    match std::fs::read_to_string(wal_dir.join(FILE_NAME)) {
        Ok(text) => Uuid::parse_str(text.trim())
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The id stored in `wal_dir`, created (written to a temp file, fsynced, renamed) on first use.
pub fn load_or_create(wal_dir: &Path) -> std::io::Result<Uuid> {
    let path = wal_dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => Uuid::parse_str(text.trim())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = Uuid::new_v4();
            replace_durably(wal_dir, FILE_NAME, &format!("{id}\n"))?;
            Ok(id)
        }
        Err(e) => Err(e),
    }
}

/// Writes `text` to `dir/name` so that after a crash the file holds either its former
/// contents or `text`, never a part: a temp file, fsynced, renamed over it, the directory
/// fsynced.
pub(super) fn replace_durably(dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    let temp = dir.join(format!("{name}.tmp"));
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        assert_eq!(load_or_create(dir.path()).unwrap(), first);
        assert_eq!(load(dir.path()).unwrap(), Some(first));
    }
}
