//! The PostgreSQL definitions recorded beside a store's migrations
//! (`migrations/postgres.definitions.json`, written by `orchestrator lint --write` from the
//! same replay as the recorded model, embedded in the binary): what a repair writes,
//! known without building a scratch database, which costs the server a `CREATE DATABASE`
//! and a `DROP DATABASE` (each waits for a checkpoint's worth of I/O).
//!
//! A record is only trusted for the history it was made from (a fingerprint of every
//! `up.sql`, so a migration changed without recording again is noticed) and on a server
//! of the major version it was read on (`pg_get_constraintdef` and `pg_get_indexdef`
//! spell things their version's way). Otherwise a repair replays the migrations in a
//! scratch database, as before; either way it proves its result against the model.

use serde::{Deserialize, Serialize};

use super::definitions::{ColumnSql, Definitions};
use crate::store::MigrationSql;

/// The record's file, in a store's `migrations/` folder.
pub const RECORDED_DEFINITIONS: &str = "postgres.definitions.json";

/// This layout of the record; a record of another is not used.
const FORMAT: u32 = 1;

/// The record as it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub format: u32,
    /// The major version of the server the definitions were read on (15 for 15.4).
    pub server_major: u32,
    /// [`history_fingerprint`] of the PostgreSQL history they were made by.
    pub history: String,
    pub tables: Vec<TableSql>,
    pub columns: Vec<ColumnRecord>,
    pub constraints: Vec<NamedSql>,
    pub indexes: Vec<NamedSql>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSql {
    pub table: String,
    pub sql: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnRecord {
    pub table: String,
    pub column: String,
    pub sql_type: String,
    pub default: Option<String>,
    pub not_null: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedSql {
    pub table: String,
    pub name: String,
    pub sql: String,
}

/// Why a record is not used, in words for the log and the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    Missing,
    Unreadable(String),
    OtherHistory,
    OtherServer { recorded: u32, server: u32 },
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Missing => write!(f, "no {RECORDED_DEFINITIONS} was recorded"),
            Unusable::Unreadable(e) => write!(f, "{RECORDED_DEFINITIONS} cannot be read: {e}"),
            Unusable::OtherHistory => write!(
                f,
                "{RECORDED_DEFINITIONS} was recorded from another PostgreSQL history"
            ),
            Unusable::OtherServer { recorded, server } => write!(
                f,
                "{RECORDED_DEFINITIONS} was read on PostgreSQL {recorded}, the server is {server}"
            ),
        }
    }
}

/// A fingerprint of a history: the sha256 of every migration's name and `up.sql`.
pub fn history_fingerprint(sql: &[MigrationSql]) -> String {
    fingerprint_of(sql.iter().map(|m| (m.name, m.up)))
}

/// [`history_fingerprint`] of `(folder name, up.sql)` pairs, oldest first.
pub fn fingerprint_of<'a>(migrations: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut all = String::new();
    for (name, up) in migrations {
        all.push_str(name);
        all.push('\0');
        all.push_str(up);
        all.push('\0');
    }
    crate::migrations::checksum(&all)
}

/// [`history_fingerprint`] of a folder of `<version>_<name>/up.sql` (one backend's).
pub fn dir_fingerprint(dir: &std::path::Path) -> Result<String, String> {
    let mut found: Vec<(String, String)> = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let up = entry.path().join("up.sql");
        if up.is_file() {
            let text =
                std::fs::read_to_string(&up).map_err(|e| format!("{}: {e}", up.display()))?;
            found.push((entry.file_name().to_string_lossy().into_owned(), text));
        }
    }
    // As the store crates' build script orders them.
    found.sort();
    Ok(fingerprint_of(
        found.iter().map(|(n, u)| (n.as_str(), u.as_str())),
    ))
}

impl Recorded {
    /// The record of `defs`, read on a server of `server_major` after `history` ran.
    pub fn new(defs: &Definitions, server_major: u32, history: &[MigrationSql]) -> Recorded {
        Recorded::with_fingerprint(defs, server_major, history_fingerprint(history))
    }

    /// [`Recorded::new`] for a history known by its fingerprint.
    pub fn with_fingerprint(defs: &Definitions, server_major: u32, history: String) -> Recorded {
        Recorded {
            format: FORMAT,
            server_major,
            history,
            tables: defs
                .create_table
                .iter()
                .map(|(table, sql)| TableSql {
                    table: table.clone(),
                    sql: sql.clone(),
                })
                .collect(),
            columns: defs
                .columns
                .iter()
                .map(|((table, column), c)| ColumnRecord {
                    table: table.clone(),
                    column: column.clone(),
                    sql_type: c.sql_type.clone(),
                    default: c.default.clone(),
                    not_null: c.not_null,
                })
                .collect(),
            constraints: defs
                .constraints
                .iter()
                .map(|((table, name), sql)| NamedSql {
                    table: table.clone(),
                    name: name.clone(),
                    sql: sql.clone(),
                })
                .collect(),
            indexes: defs
                .indexes
                .iter()
                .map(|(name, (table, sql))| NamedSql {
                    table: table.clone(),
                    name: name.clone(),
                    sql: sql.clone(),
                })
                .collect(),
        }
    }

    /// The record of what `conn`'s schema holds (a database the history was just run in),
    /// with its server's major version, for the history of `fingerprint`.
    pub fn read(conn: &mut crate::db::Conn, fingerprint: String) -> Result<Recorded, String> {
        let defs =
            super::definitions::read(conn).map_err(|e| format!("reading the definitions: {e}"))?;
        let major = crate::admin::server_major(conn)
            .map_err(|e| format!("reading the server's version: {e}"))?;
        Ok(Recorded::with_fingerprint(&defs, major, fingerprint))
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    pub fn from_json(text: &str) -> Result<Recorded, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    pub fn definitions(&self) -> Definitions {
        let mut defs = Definitions::default();
        for t in &self.tables {
            defs.create_table.insert(t.table.clone(), t.sql.clone());
        }
        for c in &self.columns {
            defs.columns.insert(
                (c.table.clone(), c.column.clone()),
                ColumnSql {
                    sql_type: c.sql_type.clone(),
                    default: c.default.clone(),
                    not_null: c.not_null,
                },
            );
        }
        for c in &self.constraints {
            defs.constraints
                .insert((c.table.clone(), c.name.clone()), c.sql.clone());
        }
        for i in &self.indexes {
            defs.indexes
                .insert(i.name.clone(), (i.table.clone(), i.sql.clone()));
        }
        defs
    }
}

/// The recorded definitions (`text`, as embedded) when they may stand for what `history`
/// makes on a server of `server_major`; why not otherwise.
pub fn usable(
    text: Option<&str>,
    history: &[MigrationSql],
    server_major: u32,
) -> Result<Definitions, Unusable> {
    let text = text.ok_or(Unusable::Missing)?;
    let recorded = Recorded::from_json(text).map_err(Unusable::Unreadable)?;
    if recorded.format != FORMAT {
        return Err(Unusable::Unreadable(format!(
            "format {} (this build reads {FORMAT})",
            recorded.format
        )));
    }
    if recorded.history != history_fingerprint(history) {
        return Err(Unusable::OtherHistory);
    }
    if recorded.server_major != server_major {
        return Err(Unusable::OtherServer {
            recorded: recorded.server_major,
            server: server_major,
        });
    }
    Ok(recorded.definitions())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HISTORY: &[MigrationSql] = &[MigrationSql {
        name: "2020-01-01-000001_a",
        up: "CREATE TABLE a (id TEXT PRIMARY KEY);",
        down: None,
    }];

    fn defs() -> Definitions {
        let mut d = Definitions::default();
        d.create_table.insert(
            "a".into(),
            "CREATE TABLE a (\n  id text NOT NULL,\n  CONSTRAINT a_pkey PRIMARY KEY (id)\n)".into(),
        );
        d.columns.insert(
            ("a".into(), "id".into()),
            ColumnSql {
                sql_type: "text".into(),
                default: Some("'x'::text".into()),
                not_null: true,
            },
        );
        d.constraints
            .insert(("a".into(), "a_pkey".into()), "PRIMARY KEY (id)".into());
        d.indexes.insert(
            "a_idx".into(),
            (
                "a".into(),
                "CREATE INDEX a_idx ON a USING btree (id)".into(),
            ),
        );
        d
    }

    #[test]
    fn a_record_reads_back_as_the_definitions_it_was_made_of() {
        let text = Recorded::new(&defs(), 15, HISTORY).to_json();
        let back = usable(Some(&text), HISTORY, 15).expect("usable");
        assert_eq!(back.create_table, defs().create_table);
        assert_eq!(back.columns, defs().columns);
        assert_eq!(back.constraints, defs().constraints);
        assert_eq!(back.indexes, defs().indexes);
    }

    #[test]
    fn a_record_of_another_history_or_server_or_none_is_not_used() {
        let text = Recorded::new(&defs(), 15, HISTORY).to_json();
        let changed = [MigrationSql {
            up: "CREATE TABLE a (id BIGINT PRIMARY KEY);",
            ..HISTORY[0]
        }];
        assert_eq!(
            usable(Some(&text), &changed, 15).err(),
            Some(Unusable::OtherHistory)
        );
        assert_eq!(
            usable(Some(&text), HISTORY, 16).err(),
            Some(Unusable::OtherServer {
                recorded: 15,
                server: 16
            })
        );
        assert_eq!(usable(None, HISTORY, 15).err(), Some(Unusable::Missing));
        assert!(matches!(
            usable(Some("{"), HISTORY, 15),
            Err(Unusable::Unreadable(_))
        ));
    }

    #[test]
    fn the_fingerprint_covers_names_and_text() {
        let renamed = [MigrationSql {
            name: "2020-01-01-000002_a",
            ..HISTORY[0]
        }];
        assert_ne!(history_fingerprint(HISTORY), history_fingerprint(&renamed));
        assert_eq!(history_fingerprint(HISTORY), history_fingerprint(HISTORY));
    }
}
