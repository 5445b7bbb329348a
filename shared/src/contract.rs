//! Compares a live database with its store's description: missing and unexpected tables,
//! and foreign keys that are missing, point elsewhere or act differently on delete.

use serde::Serialize;

use crate::catalog::{self, LiveForeignKey};
use crate::db::Conn;
use crate::store::{ForeignKey, Store};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableCheck {
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
}

/// A foreign key whose column is right but whose target or ON DELETE action is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FkMismatch {
    /// `table.column`
    pub column: String,
    /// `users.id ON DELETE CASCADE`
    pub expected: String,
    pub found: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ForeignKeyCheck {
    /// `table.column -> ref_table.ref_column ON DELETE action`
    pub missing: Vec<String>,
    pub mismatched: Vec<FkMismatch>,
    pub unexpected: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SchemaCheck {
    pub tables: TableCheck,
    pub foreign_keys: ForeignKeyCheck,
}

impl SchemaCheck {
    pub fn ok(&self) -> bool {
        self.tables.missing.is_empty()
            && self.tables.unexpected.is_empty()
            && self.foreign_keys.missing.is_empty()
            && self.foreign_keys.mismatched.is_empty()
            && self.foreign_keys.unexpected.is_empty()
    }

    /// One line naming every problem, for error messages.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        let list = |v: &[String]| v.join(", ");
        if !self.tables.missing.is_empty() {
            parts.push(format!("missing tables: {}", list(&self.tables.missing)));
        }
        if !self.tables.unexpected.is_empty() {
            parts.push(format!(
                "unexpected tables: {}",
                list(&self.tables.unexpected)
            ));
        }
        if !self.foreign_keys.missing.is_empty() {
            parts.push(format!(
                "missing foreign keys: {}",
                list(&self.foreign_keys.missing)
            ));
        }
        for m in &self.foreign_keys.mismatched {
            parts.push(format!(
                "{} should reference {} but references {}",
                m.column, m.expected, m.found
            ));
        }
        if !self.foreign_keys.unexpected.is_empty() {
            parts.push(format!(
                "unexpected foreign keys: {}",
                list(&self.foreign_keys.unexpected)
            ));
        }
        if parts.is_empty() {
            "schema matches the contract".into()
        } else {
            parts.join("; ")
        }
    }
}

fn target(ref_table: &str, ref_column: &str, on_delete: impl std::fmt::Display) -> String {
    format!("{ref_table}.{ref_column} ON DELETE {on_delete}")
}

fn describe_expected(fk: &ForeignKey) -> String {
    format!(
        "{}.{} -> {}",
        fk.table,
        fk.column,
        target(fk.ref_table, fk.ref_column, fk.on_delete)
    )
}

fn describe_live(fk: &LiveForeignKey) -> String {
    format!(
        "{}.{} -> {}",
        fk.table,
        fk.column,
        target(&fk.ref_table, &fk.ref_column, fk.on_delete)
    )
}

/// Compares the expected tables and FKs with what the catalogs say, in one query.
pub fn check_schema(conn: &mut Conn, store: &Store) -> diesel::QueryResult<SchemaCheck> {
    let (tables, fks) = catalog::tables_and_foreign_keys(conn)?;
    Ok(compare(store, &tables, &fks))
}

/// The comparison itself, on already-read catalog data.
pub fn compare(store: &Store, tables: &[String], fks: &[LiveForeignKey]) -> SchemaCheck {
    let mut check = SchemaCheck::default();
    check.tables.missing = store
        .tables
        .iter()
        .filter(|t| !tables.iter().any(|l| l == *t))
        .map(|t| t.to_string())
        .collect();
    check.tables.unexpected = tables
        .iter()
        .filter(|l| !store.tables.contains(&l.as_str()))
        .cloned()
        .collect();
    for expected in store.foreign_keys {
        let live = fks
            .iter()
            .find(|l| l.table == expected.table && l.column == expected.column);
        match live {
            None => check.foreign_keys.missing.push(describe_expected(expected)),
            Some(l)
                if l.ref_table != expected.ref_table
                    || l.ref_column != expected.ref_column
                    || l.on_delete != expected.on_delete =>
            {
                check.foreign_keys.mismatched.push(FkMismatch {
                    column: format!("{}.{}", expected.table, expected.column),
                    expected: target(expected.ref_table, expected.ref_column, expected.on_delete),
                    found: target(&l.ref_table, &l.ref_column, l.on_delete),
                });
            }
            Some(_) => {}
        }
    }
    check.foreign_keys.unexpected = fks
        .iter()
        .filter(|l| {
            !store
                .foreign_keys
                .iter()
                .any(|e| e.table == l.table && e.column == l.column)
        })
        .map(describe_live)
        .collect();
    check
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Migrations, OnDelete};
    use diesel_migrations::EmbeddedMigrations;

    const EMPTY: EmbeddedMigrations = EmbeddedMigrations::new(&[]);
    static STORE: Store = Store {
        name: "t",
        depends_on: &[],
        migrations: Migrations {
            postgres: EMPTY,
            sqlite: EMPTY,
            postgres_sql: &[],
            sqlite_sql: &[],
            postgres_model: "",
            postgres_squash: None,
            sqlite_squash: None,
            postgres_definitions: None,
        },
        migrations_dir: "",
        tables: &["users", "teams"],
        foreign_keys: &[ForeignKey {
            table: "teams",
            column: "owner_id",
            ref_table: "users",
            ref_column: "id",
            on_delete: OnDelete::Cascade,
        }],
        references: &[],
        code_schema: "",
    };

    fn live(table: &str, column: &str, on_delete: OnDelete) -> LiveForeignKey {
        LiveForeignKey {
            table: table.into(),
            column: column.into(),
            ref_table: "users".into(),
            ref_column: "id".into(),
            on_delete,
        }
    }

    #[test]
    fn a_matching_schema_is_ok() {
        let check = compare(
            &STORE,
            &["teams".into(), "users".into()],
            &[live("teams", "owner_id", OnDelete::Cascade)],
        );
        assert!(check.ok(), "{}", check.summary());
    }

    #[test]
    fn drift_is_named() {
        let check = compare(
            &STORE,
            &["teams".into(), "stray".into()],
            &[
                live("teams", "owner_id", OnDelete::NoAction),
                live("stray", "user_id", OnDelete::Cascade),
            ],
        );
        assert!(!check.ok());
        assert_eq!(check.tables.missing, ["users"]);
        assert_eq!(check.tables.unexpected, ["stray"]);
        assert_eq!(check.foreign_keys.mismatched.len(), 1);
        assert_eq!(
            check.foreign_keys.mismatched[0].expected,
            "users.id ON DELETE CASCADE"
        );
        assert_eq!(
            check.foreign_keys.mismatched[0].found,
            "users.id ON DELETE NO ACTION"
        );
        assert_eq!(
            check.foreign_keys.unexpected,
            ["stray.user_id -> users.id ON DELETE CASCADE"]
        );
        let summary = check.summary();
        assert!(
            summary.contains("teams.owner_id should reference"),
            "{summary}"
        );
    }
}
