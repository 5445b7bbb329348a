//! The description of a store: everything the orchestrator needs to know about a database
//! without naming any of its tables itself.

use std::fmt;

use diesel_migrations::EmbeddedMigrations;
use serde::{Deserialize, Serialize};

use crate::url::Backend;

/// What a foreign key does to referencing rows when the referenced row is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OnDelete {
    #[serde(rename = "NO ACTION")]
    NoAction,
    #[serde(rename = "RESTRICT")]
    Restrict,
    #[serde(rename = "CASCADE")]
    Cascade,
    #[serde(rename = "SET NULL")]
    SetNull,
    #[serde(rename = "SET DEFAULT")]
    SetDefault,
}

impl OnDelete {
    pub fn as_sql(self) -> &'static str {
        match self {
            OnDelete::NoAction => "NO ACTION",
            OnDelete::Restrict => "RESTRICT",
            OnDelete::Cascade => "CASCADE",
            OnDelete::SetNull => "SET NULL",
            OnDelete::SetDefault => "SET DEFAULT",
        }
    }

    /// Reads PostgreSQL's `pg_constraint.confdeltype` code or SQLite's
    /// `pragma_foreign_key_list.on_delete` words.
    pub fn from_catalog(code: &str) -> Option<Self> {
        Some(match code.trim().to_ascii_uppercase().as_str() {
            "A" | "NO ACTION" => OnDelete::NoAction,
            "R" | "RESTRICT" => OnDelete::Restrict,
            "C" | "CASCADE" => OnDelete::Cascade,
            "N" | "SET NULL" => OnDelete::SetNull,
            "D" | "SET DEFAULT" => OnDelete::SetDefault,
            _ => return None,
        })
    }
}

impl fmt::Display for OnDelete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_sql())
    }
}

/// A foreign key inside one store, as the contract expects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ForeignKey {
    pub table: &'static str,
    pub column: &'static str,
    pub ref_table: &'static str,
    pub ref_column: &'static str,
    pub on_delete: OnDelete,
}

/// A reference from a column of this store into another store. No FK can span two
/// databases, so the orchestrator checks these itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CrossReference {
    pub table: &'static str,
    pub column: &'static str,
    pub target_store: &'static str,
    pub target_table: &'static str,
    pub target_column: &'static str,
    pub nullable: bool,
}

/// The text of one migration's `up.sql`, embedded by the store crate's build script
/// (diesel keeps an embedded migration's SQL private); its checksum is what verify
/// compares with the one recorded when the migration was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationSql {
    /// The migration's folder name, `2025-01-01-000001_identity`.
    pub name: &'static str,
    pub up: &'static str,
    /// The `down.sql` text, for `revert`; `None` when the migration has none.
    pub down: Option<&'static str>,
}

/// Each backend's migration history, embedded into the binary.
pub struct Migrations {
    pub postgres: EmbeddedMigrations,
    pub sqlite: EmbeddedMigrations,
    pub postgres_sql: &'static [MigrationSql],
    pub sqlite_sql: &'static [MigrationSql],
    /// The model of the schema the PostgreSQL history makes, as JSON
    /// (`migrations/postgres.schema.json`, see `expected`): what `verify` holds a
    /// PostgreSQL store to without a server of its own to replay the history on.
    pub postgres_model: &'static str,
    /// Each backend's squash record (`squash.json`, see `history::SquashMap`) when its
    /// history was squashed, embedded at build time.
    pub postgres_squash: Option<&'static str>,
    pub sqlite_squash: Option<&'static str>,
    /// The exact SQL of what the PostgreSQL history makes
    /// (`migrations/postgres.definitions.json`, see `shared::repair::recorded`), when it
    /// was recorded: what `repair` writes without a scratch database.
    pub postgres_definitions: Option<&'static str>,
}

impl Migrations {
    pub fn for_backend(&self, backend: Backend) -> &EmbeddedMigrations {
        match backend {
            Backend::Postgres => &self.postgres,
            Backend::Sqlite => &self.sqlite,
        }
    }

    /// The backend's embedded squash record, if its history was squashed.
    pub fn squash_for(&self, backend: Backend) -> Option<&'static str> {
        match backend {
            Backend::Postgres => self.postgres_squash,
            Backend::Sqlite => self.sqlite_squash,
        }
    }

    /// The `up.sql` texts of a backend's history, oldest first.
    pub fn sql_for(&self, backend: Backend) -> &'static [MigrationSql] {
        match backend {
            Backend::Postgres => self.postgres_sql,
            Backend::Sqlite => self.sqlite_sql,
        }
    }
}

/// The [`Migrations`] of a store crate, from its own folder: both histories embedded from
/// `migrations/postgres` and `migrations/sqlite`, the recorded model
/// `migrations/postgres.schema.json`, and the SQL texts and squash records its build script
/// wrote (`build.rs` including `store-core/build/migration_sql.rs`). Every path is the calling
/// crate's; it needs `diesel_migrations` as a dependency.
#[macro_export]
macro_rules! store_migrations {
    () => {{
        mod migration_sql {
            include!(concat!(env!("OUT_DIR"), "/migration_sql.rs"));
        }
        $crate::store::Migrations {
            postgres: diesel_migrations::embed_migrations!("migrations/postgres"),
            sqlite: diesel_migrations::embed_migrations!("migrations/sqlite"),
            postgres_sql: migration_sql::POSTGRES_SQL,
            sqlite_sql: migration_sql::SQLITE_SQL,
            postgres_model: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/postgres.schema.json"
            )),
            postgres_squash: migration_sql::POSTGRES_SQUASH,
            sqlite_squash: migration_sql::SQLITE_SQUASH,
            postgres_definitions: migration_sql::POSTGRES_DEFINITIONS,
        }
    }};
}

/// One database of the product: its name, what it depends on, its migrations and the
/// schema it must end up with.
pub struct Store {
    pub name: &'static str,
    /// Stores that must be migrated before this one and dropped after it.
    pub depends_on: &'static [&'static str],
    pub migrations: Migrations,
    /// The crate's `migrations/` folder in the source tree, for commands that rewrite it.
    pub migrations_dir: &'static str,
    pub tables: &'static [&'static str],
    pub foreign_keys: &'static [ForeignKey],
    pub references: &'static [CrossReference],
    /// The text of the crate's `src/schema.rs`: the diesel `table!` definitions its code is
    /// compiled against (`include_str!("schema.rs")`). `shared::code_schema::parse` reads
    /// it, so that a live database can be checked for what the code reads, not only for
    /// what the migrations say.
    pub code_schema: &'static str,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("name", &self.name)
            .field("depends_on", &self.depends_on)
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

/// The bookkeeping tables of diesel and of the orchestrator: not part of any store's
/// schema, and holding nothing a reset must keep. Only these exact names: another tool's
/// `__drizzle_migrations` or a team's `__payouts_archive` are data like any table.
pub const BOOKKEEPING_TABLES: &[&str] = &[
    "__diesel_schema_migrations",
    "__orchestrator_migrations",
    "__orchestrator_resets",
];

/// Whether `table` is one of [`BOOKKEEPING_TABLES`].
pub fn is_bookkeeping(table: &str) -> bool {
    BOOKKEEPING_TABLES.contains(&table)
}

/// Orders stores so that every store comes after the stores it depends on (the order to
/// migrate in; reverse it to drop).
pub fn dependency_order<'a>(stores: &[&'a Store]) -> Vec<&'a Store> {
    let mut ordered: Vec<&'a Store> = Vec::with_capacity(stores.len());
    let mut remaining: Vec<&'a Store> = stores.to_vec();
    while !remaining.is_empty() {
        let before = remaining.len();
        remaining.retain(|store| {
            let ready = store.depends_on.iter().all(|dep| {
                ordered.iter().any(|s| s.name == *dep) || !stores.iter().any(|s| s.name == *dep)
            });
            if ready {
                ordered.push(store);
            }
            !ready
        });
        if remaining.len() == before {
            // A cycle cannot be ordered; keep the given order rather than loop forever.
            ordered.append(&mut remaining);
        }
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: EmbeddedMigrations = EmbeddedMigrations::new(&[]);

    fn store(name: &'static str, depends_on: &'static [&'static str]) -> Store {
        Store {
            name,
            depends_on,
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
            tables: &[],
            foreign_keys: &[],
            references: &[],
            code_schema: "",
        }
    }

    #[test]
    fn dependents_come_after_their_dependencies() {
        let auth = store("auth", &[]);
        let app = store("app", &["auth"]);
        let names: Vec<_> = dependency_order(&[&app, &auth])
            .iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["auth", "app"]);
        let alone: Vec<_> = dependency_order(&[&app]).iter().map(|s| s.name).collect();
        assert_eq!(alone, ["app"]);
    }

    #[test]
    fn catalog_codes_map_to_actions() {
        assert_eq!(OnDelete::from_catalog("c"), Some(OnDelete::Cascade));
        assert_eq!(OnDelete::from_catalog("SET NULL"), Some(OnDelete::SetNull));
        assert_eq!(OnDelete::from_catalog("a"), Some(OnDelete::NoAction));
        assert_eq!(OnDelete::from_catalog("?"), None);
    }
}
