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
            let temp = wal_dir.join(format!("{FILE_NAME}.tmp"));
            let mut file = std::fs::File::create(&temp)?;
            writeln!(file, "{id}")?;
            file.sync_all()?;
            std::fs::rename(&temp, &path)?;
            std::fs::File::open(wal_dir)?.sync_all()?;
            Ok(id)
        }
        Err(e) => Err(e),
    }
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
