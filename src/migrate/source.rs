//! Migration files: `migrations/NNNN_name.cql`, loaded in version order with a checksum.
//!
//! The checksum is the SHA-256 of the file as written (before placeholders are filled and tables
//! qualified), so an edited file is detected whatever settings and keyspace it is rendered with.
//!
//! Files name tables without a keyspace: one file serves every keyspace. Rendering qualifies
//! each statement's table (`metric_readings` → `ks.metric_readings`), so the runner never needs
//! `USE`. A statement is one of `CREATE TABLE`, `ALTER TABLE`, `DROP TABLE` or `CREATE INDEX …
//! ON`; anything else is refused when rendered, before any statement runs.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::MigrateError;
use crate::model::Settings;
use crate::store::cql::Keyspace;

/// One migration file.
#[derive(Debug, Clone)]
pub struct Migration {
    /// The number before the first `_` in the file name.
    pub version: i32,
    /// The rest of the file name, without `.cql`.
    pub name: String,
    /// Hex SHA-256 of the file's bytes.
    pub checksum: String,
    /// The file's text, placeholders unfilled.
    text: String,
}

impl Migration {
    /// The CQL statements of this migration for `keyspace`, with the settings filled in and the
    /// tables qualified, in file order.
    ///
    /// Statements are split at `;`; `--` comment lines are dropped. Placeholders are
    /// `{{name}}` with a name of [`placeholder_value`]; an unknown one is an error.
    pub fn statements(
        &self,
        settings: &Settings,
        keyspace: &Keyspace,
    ) -> Result<Vec<String>, MigrateError> {
        let without_comments: String = self
            .text
            .lines()
            .filter(|line| !line.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        without_comments
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                let filled = self.fill_placeholders(s, settings)?;
                qualify(&filled, keyspace).map_err(|reason| self.bad(&reason))
            })
            .collect()
    }

    fn fill_placeholders(
        &self,
        statement: &str,
        settings: &Settings,
    ) -> Result<String, MigrateError> {
        let mut out = String::with_capacity(statement.len());
        let mut rest = statement;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| self.bad("an unclosed '{{'"))?;
            let name = after[..end].trim();
            let value = placeholder_value(name, settings)
                .ok_or_else(|| self.bad(&format!("an unknown placeholder '{{{{{name}}}}}'")))?;
            out.push_str(&value.to_string());
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn bad(&self, what: &str) -> MigrateError {
        MigrateError::BadMigration {
            version: self.version,
            name: self.name.clone(),
            reason: format!("it has {what}"),
        }
    }
}

/// `statement` with its table named `keyspace.table`; `Err` says what the statement has instead.
fn qualify(statement: &str, keyspace: &Keyspace) -> Result<String, String> {
    let words: Vec<(usize, &str)> = statement
        .split_whitespace()
        .map(|word| (word.as_ptr() as usize - statement.as_ptr() as usize, word))
        .collect();
    let is = |i: usize, keyword: &str| {
        words
            .get(i)
            .is_some_and(|(_, w)| w.eq_ignore_ascii_case(keyword))
    };
    let table_at = if (is(0, "CREATE") || is(0, "ALTER") || is(0, "DROP")) && is(1, "TABLE") {
        match (is(2, "IF"), is(3, "NOT")) {
            (true, true) => 5,
            (true, false) => 4,
            _ => 2,
        }
    } else if is(0, "CREATE") && (is(1, "INDEX") || is(1, "CUSTOM")) {
        let on = (2..words.len()).find(|&i| is(i, "ON"));
        on.map(|i| i + 1)
            .ok_or_else(|| "a CREATE INDEX statement without ON".to_owned())?
    } else {
        let start: String = statement.chars().take(40).collect();
        return Err(format!(
            "a statement that is not CREATE TABLE, ALTER TABLE, DROP TABLE or CREATE INDEX              (`{start}…`)"
        ));
    };
    let &(offset, word) = words
        .get(table_at)
        .ok_or_else(|| "a statement without a table name".to_owned())?;
    let table = word.split('(').next().unwrap_or_default();
    if table.is_empty()
        || !table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(format!(
            "a table named `{table}`: name tables without a keyspace, the runner adds it"
        ));
    }
    Ok(format!(
        "{}{keyspace}.{}",
        &statement[..offset],
        &statement[offset..]
    ))
}

/// The numeric value a placeholder stands for.
pub fn placeholder_value(name: &str, settings: &Settings) -> Option<i64> {
    Some(match name {
        "ttl_seconds" => i64::from(settings.ttl_seconds),
        "compaction_window_hours" => i64::from(settings.compaction_window_hours()),
        "bucket_width_seconds" => i64::from(settings.bucket_width.seconds()),
        "rollup_minute_ttl_seconds" => i64::from(settings.rollups.minute_ttl_seconds),
        "rollup_hour_ttl_seconds" => i64::from(settings.rollups.hour_ttl_seconds),
        _ => return None,
    })
}

/// Loads every `NNNN_name.cql` in `dir`, sorted by version; other files are ignored.
pub fn load_dir(dir: &Path) -> Result<Vec<Migration>, MigrateError> {
    let entries = std::fs::read_dir(dir).map_err(|source| MigrateError::MigrationsDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut migrations = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| MigrateError::MigrationsDir {
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        if path.extension().and_then(|e| e.to_str()) != Some("cql") {
            continue;
        }
        migrations.push(load_file(&path)?);
    }
    migrations.sort_by_key(|m| m.version);
    for pair in migrations.windows(2) {
        if pair[0].version == pair[1].version {
            return Err(MigrateError::DuplicateVersion {
                version: pair[0].version,
            });
        }
    }
    Ok(migrations)
}

fn load_file(path: &PathBuf) -> Result<Migration, MigrateError> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let bad_name = || MigrateError::BadFileName { path: path.clone() };
    let (number, name) = stem.split_once('_').ok_or_else(bad_name)?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return Err(bad_name());
    }
    let version: i32 = number.parse().map_err(|_| bad_name())?;
    let bytes = std::fs::read(path).map_err(|source| MigrateError::MigrationsDir {
        path: path.clone(),
        source,
    })?;
    let text = String::from_utf8(bytes.clone()).map_err(|_| MigrateError::BadMigration {
        version,
        name: name.to_owned(),
        reason: "it is not UTF-8".into(),
    })?;
    Ok(Migration {
        version,
        name: name.to_owned(),
        checksum: hex(&Sha256::digest(&bytes)),
        text,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyspace() -> Keyspace {
        "ks".parse().unwrap()
    }

    #[test]
    fn every_statement_form_gets_its_table_qualified() {
        let cases = [
            (
                "CREATE TABLE t (k int PRIMARY KEY)",
                "CREATE TABLE ks.t (k int PRIMARY KEY)",
            ),
            (
                "create table if not exists t(k int PRIMARY KEY)",
                "create table if not exists ks.t(k int PRIMARY KEY)",
            ),
            ("ALTER TABLE t ADD c int", "ALTER TABLE ks.t ADD c int"),
            ("DROP TABLE IF EXISTS t", "DROP TABLE IF EXISTS ks.t"),
            ("DROP TABLE t", "DROP TABLE ks.t"),
            (
                "CREATE INDEX IF NOT EXISTS t_c ON t (c)",
                "CREATE INDEX IF NOT EXISTS t_c ON ks.t (c)",
            ),
            (
                "CREATE TABLE IF NOT EXISTS\n    t (k int PRIMARY KEY)",
                "CREATE TABLE IF NOT EXISTS\n    ks.t (k int PRIMARY KEY)",
            ),
        ];
        for (statement, expected) in cases {
            assert_eq!(qualify(statement, &keyspace()).unwrap(), expected);
        }
        for refused in [
            "CREATE TABLE other.t (k int PRIMARY KEY)",
            "INSERT INTO t (k) VALUES (1)",
            "CREATE TYPE pair (a int, b int)",
            "CREATE INDEX t_c",
            "DROP TABLE",
        ] {
            assert!(qualify(refused, &keyspace()).is_err(), "{refused}");
        }
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn loads_in_version_order_and_fills_placeholders() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "0002_b.cql",
            "CREATE TABLE b (k int PRIMARY KEY);",
        );
        write(
            dir.path(),
            "0001_a.cql",
            "-- a comment; with a semicolon\nCREATE TABLE a (k int PRIMARY KEY) WITH default_time_to_live = {{ttl_seconds}};\n\nCREATE TABLE c (k int PRIMARY KEY);",
        );
        write(dir.path(), "README.md", "ignored");
        let migrations = load_dir(dir.path()).unwrap();
        assert_eq!(
            migrations.iter().map(|m| m.version).collect::<Vec<_>>(),
            [1, 2]
        );
        let statements = migrations[0]
            .statements(&Settings::default(), &keyspace())
            .unwrap();
        assert_eq!(statements.len(), 2);
        assert!(statements[0].starts_with("CREATE TABLE ks.a (k int"));
        assert!(statements[0].ends_with("default_time_to_live = 604800"));
    }

    #[test]
    fn rejects_bad_names_unknown_placeholders_and_missing_dirs() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "first.cql", "");
        assert!(matches!(
            load_dir(dir.path()),
            Err(MigrateError::BadFileName { .. })
        ));

        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "0001_a.cql", "DROP TABLE t{{nope}};");
        let migration = &load_dir(dir.path()).unwrap()[0];
        assert!(migration
            .statements(&Settings::default(), &keyspace())
            .is_err());

        let missing = dir.path().join("absent");
        assert!(matches!(
            load_dir(&missing),
            Err(MigrateError::MigrationsDir { .. })
        ));
    }

    #[test]
    fn the_shipped_migrations_render() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        for migration in load_dir(&dir).unwrap() {
            for statement in migration
                .statements(&Settings::default(), &keyspace())
                .unwrap()
            {
                assert!(!statement.contains("{{"), "{statement}");
                assert!(statement.contains(" ks."), "{statement}");
            }
        }
    }
}
