//! A backend-neutral model of a schema (tables, columns with type, nullability and default,
//! primary keys, unique constraints, indexes with their collations, order and predicates,
//! check constraints, foreign keys with their actions), read from a live database, and the
//! comparison of two models that `verify`, `diff` and `squash` rest on. Bookkeeping tables,
//! this tool's and other migration tools' (`_prisma_migrations`, …), are never part of a
//! model.
//!
//! Constraints and indexes are kept as multisets (definition → the names carrying it), so
//! that a second, identical index or foreign key is a difference like any other; names
//! themselves are never compared.
//!
//! What the backends spell differently is normalised on the way in: types through
//! [`catalog::logical_type`], default, check and predicate expressions through
//! [`normalise_expr`], index keys as the names (or expressions) of their columns with the
//! collation only when it is not the column's own.

mod compare;
mod expr;
mod kind;
mod logical;
mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use diesel::sql_types::{Bool, Integer, Nullable, Text};
use diesel::QueryableByName;
use serde::{Deserialize, Serialize};

use crate::catalog;
use crate::db::Conn;
use crate::store::{is_bookkeeping, OnDelete};
pub use kind::DifferenceKind;

pub use compare::compare;
pub use expr::{check_clauses, normalise_expr};
pub use logical::logical_view;
pub use sqlite::sqlite_creation_sql;

/// A column: its logical type, whether it accepts NULL, its default expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnModel {
    pub data_type: String,
    pub nullable: bool,
    pub default: Option<String>,
}

/// A foreign key of one column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ForeignKeyModel {
    pub column: String,
    pub ref_table: String,
    pub ref_column: String,
    pub on_delete: OnDelete,
}

impl ForeignKeyModel {
    /// What the key joins, `(column, ref_table, ref_column)`: two keys with the same target
    /// and another ON DELETE are one key whose action changed.
    pub fn target(&self) -> (&str, &str, &str) {
        (&self.column, &self.ref_table, &self.ref_column)
    }
}

/// One key column of an index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IndexColumn {
    /// The column's name, or the normalised expression.
    pub expr: String,
    /// The collation, when the index names one other than the column's own.
    pub collation: Option<String>,
    pub descending: bool,
}

/// An index that no constraint created (`CREATE [UNIQUE] INDEX`), by its definition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IndexModel {
    pub columns: Vec<IndexColumn>,
    pub unique: bool,
    /// A partial index's normalised `WHERE`.
    pub predicate: Option<String>,
}

/// Definition → the names of the objects that carry it (more than one: duplicates).
pub type Named<K> = BTreeMap<K, Vec<String>>;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableModel {
    pub columns: BTreeMap<String, ColumnModel>,
    pub primary_key: Vec<String>,
    /// Column lists of UNIQUE constraints.
    #[serde(with = "pairs")]
    pub uniques: Named<Vec<String>>,
    #[serde(with = "pairs")]
    pub indexes: Named<IndexModel>,
    /// Normalised CHECK expressions.
    pub checks: Named<String>,
    #[serde(with = "pairs")]
    pub foreign_keys: Named<ForeignKeyModel>,
}

/// Every table of a schema, bookkeeping aside.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaModel {
    pub tables: BTreeMap<String, TableModel>,
}

impl SchemaModel {
    /// Reads a model from its JSON (a store's recorded PostgreSQL model).
    pub fn from_json(text: &str) -> Result<SchemaModel, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Every foreign key as the contract's check reads them: one per column pair, a
    /// second copy of one included.
    pub fn live_foreign_keys(&self) -> Vec<catalog::LiveForeignKey> {
        let mut out = Vec::new();
        for (table, t) in &self.tables {
            for (fk, names) in &t.foreign_keys {
                out.extend(names.iter().map(|_| catalog::LiveForeignKey {
                    table: table.clone(),
                    column: fk.column.clone(),
                    ref_table: fk.ref_table.clone(),
                    ref_column: fk.ref_column.clone(),
                    on_delete: fk.on_delete,
                }));
            }
        }
        out
    }

    /// The JSON a model is recorded as: stable, one item per line, for review.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// Maps whose keys are not strings, as JSON lists of `[key, value]` pairs.
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S, K, V>(map: &BTreeMap<K, V>, s: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        K: Serialize,
        V: Serialize,
    {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, D, K, V>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        D: Deserializer<'de>,
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

/// One way in which a database differs from what its migrations produce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub kind: DifferenceKind,
    pub table: String,
    /// The column, constraint or index concerned (the table itself for table kinds).
    pub object: String,
    /// What the migrations produce (`null` when they do not produce it).
    pub expected: Option<String>,
    /// What the database holds (`null` when it does not hold it).
    pub found: Option<String>,
    /// What to do about it, in words.
    pub advice: String,
    /// For an object the migrations lack: the objects it is a second copy of.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub duplicates: Vec<String>,
}

impl Difference {
    /// One line for people: `table: what differs: what to do`.
    pub fn describe(&self, store: &str) -> String {
        use DifferenceKind::*;
        let noun = self.kind.noun();
        let what = match self.kind {
            MissingTable => "the table is missing from the database".to_string(),
            UnexpectedTable => "the table exists in the database but not in the migrations".into(),
            MissingColumn => format!("column `{}` is missing from the database", self.object),
            UnexpectedColumn => format!(
                "column `{}` exists in the database but not in the migrations",
                self.object
            ),
            MissingForeignKey | MissingIndex | MissingUnique | MissingCheck => {
                format!("{noun} {} is missing from the database", self.object)
            }
            UnexpectedForeignKey | UnexpectedIndex | UnexpectedUnique | UnexpectedCheck => format!(
                "{noun} {} exists in the database but not in the migrations",
                self.object
            ),
            ColumnType | ColumnNullability | ColumnDefault | PrimaryKey | ForeignKeyAction => {
                format!(
                    "{noun} of `{}` is {} in the database, the migrations say {}",
                    self.object,
                    self.found.as_deref().unwrap_or("none"),
                    self.expected.as_deref().unwrap_or("none")
                )
            }
        };
        format!("{store}.{}: {what}: {}", self.table, self.advice)
    }
}

/// What a backend's catalog says, row by row, before it becomes a model.
#[derive(Default)]
struct CatalogRows {
    tables: Vec<String>,
    columns: Vec<ColumnRow>,
    indexes: Vec<IndexRow>,
    checks: Vec<NamedRow>,
    foreign_keys: Vec<ForeignKeyRow>,
}

/// One column, as both backends' column queries name it.
#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text, column_name = "table_name")]
    table: String,
    #[diesel(sql_type = Text, column_name = "column_name")]
    column: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Bool)]
    not_null: bool,
    #[diesel(sql_type = Nullable<Text>, column_name = "dflt")]
    default: Option<String>,
    /// Position in the primary key, from 1; 0 when not part of it.
    #[diesel(sql_type = Integer)]
    pk: i32,
}

/// One key column of an index, as both backends' index queries name it; `predicate` is
/// the `WHERE` (PostgreSQL) or the partial index's whole statement (SQLite), which
/// [`index_rows`] turns into the `WHERE`.
#[derive(QueryableByName)]
struct IndexQuery {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    index_name: String,
    #[diesel(sql_type = Text)]
    origin: String,
    #[diesel(sql_type = Bool)]
    is_unique: bool,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Nullable<Text>)]
    collation: Option<String>,
    #[diesel(sql_type = Bool)]
    descending: bool,
    #[diesel(sql_type = Nullable<Text>)]
    predicate: Option<String>,
}

fn index_rows(rows: Vec<IndexQuery>, predicate: impl Fn(&str) -> Option<String>) -> Vec<IndexRow> {
    rows.into_iter()
        .map(|i| IndexRow {
            table: i.table_name,
            index: i.index_name,
            origin: i.origin,
            unique: i.is_unique,
            column: IndexColumn {
                expr: expr::normalise_index_column(&i.column_name),
                collation: i.collation,
                descending: i.descending,
            },
            predicate: i.predicate.as_deref().and_then(&predicate),
        })
        .collect()
}

/// One column pair of a foreign key, as both backends' queries name it.
#[derive(QueryableByName)]
struct ForeignKeyQuery {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    ref_table: String,
    #[diesel(sql_type = Text)]
    ref_column: String,
    #[diesel(sql_type = Text)]
    on_delete: String,
}

fn foreign_key_rows(rows: Vec<ForeignKeyQuery>) -> diesel::QueryResult<Vec<ForeignKeyRow>> {
    rows.into_iter()
        .map(|f| {
            Ok(ForeignKeyRow {
                key: ForeignKeyModel {
                    on_delete: on_delete(&f.on_delete, &f.table_name, &f.column_name)?,
                    column: f.column_name,
                    ref_table: f.ref_table,
                    ref_column: f.ref_column,
                },
                table: f.table_name,
                name: f.name,
            })
        })
        .collect()
}

/// One key column of an index.
struct IndexRow {
    table: String,
    index: String,
    /// `pk`, `u` (a UNIQUE constraint) or `c` (CREATE INDEX).
    origin: String,
    unique: bool,
    column: IndexColumn,
    predicate: Option<String>,
}

/// A named object of a table with a definition (a check's expression).
#[derive(QueryableByName)]
struct NamedRow {
    #[diesel(sql_type = Text, column_name = "table_name")]
    table: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text, column_name = "def")]
    definition: String,
}

struct ForeignKeyRow {
    table: String,
    name: String,
    key: ForeignKeyModel,
}

/// Reads the model of the connection's schema (PostgreSQL: the current schema).
pub fn introspect(conn: &mut Conn) -> diesel::QueryResult<SchemaModel> {
    let rows = match conn {
        Conn::Postgres(pg) => postgres::read(pg)?,
        Conn::Sqlite(lite) => sqlite::read(lite)?,
    };
    Ok(assemble(rows))
}

fn assemble(rows: CatalogRows) -> SchemaModel {
    let mut model = SchemaModel::default();
    for table in rows.tables {
        // Another migration tool's history is its bookkeeping, as ours is: no part of the
        // schema the migrations are compared with (`adopt` names it).
        if !is_bookkeeping(&table) && crate::other_tools::history_of(&table).is_none() {
            model.tables.insert(table, TableModel::default());
        }
    }
    let mut pks: BTreeMap<String, Vec<(i32, String)>> = BTreeMap::new();
    for r in rows.columns {
        let Some(table) = model.tables.get_mut(&r.table) else {
            continue;
        };
        if r.pk > 0 {
            pks.entry(r.table.clone())
                .or_default()
                .push((r.pk, r.column.clone()));
        }
        table.columns.insert(
            r.column,
            ColumnModel {
                data_type: catalog::logical_type(&r.data_type),
                nullable: !r.not_null,
                default: r.default.as_deref().map(normalise_expr),
            },
        );
    }
    for (name, mut cols) in pks {
        cols.sort();
        if let Some(table) = model.tables.get_mut(&name) {
            table.primary_key = cols.into_iter().map(|(_, c)| c).collect();
        }
    }

    // Rows come one per key column, in key order.
    let mut indexes: BTreeMap<(String, String), (String, IndexModel)> = BTreeMap::new();
    for r in rows.indexes {
        let entry = indexes.entry((r.table, r.index)).or_insert_with(|| {
            let index = IndexModel {
                columns: Vec::new(),
                unique: r.unique,
                predicate: r.predicate.as_deref().map(normalise_expr),
            };
            (r.origin.clone(), index)
        });
        entry.1.columns.push(r.column);
    }
    for ((table_name, index_name), (origin, index)) in indexes {
        let Some(table) = model.tables.get_mut(&table_name) else {
            continue;
        };
        match origin.as_str() {
            "pk" => {}
            "u" => {
                let columns = index.columns.into_iter().map(|c| c.expr).collect();
                table.uniques.entry(columns).or_default().push(index_name);
            }
            _ => table.indexes.entry(index).or_default().push(index_name),
        }
    }
    for r in rows.checks {
        if let Some(table) = model.tables.get_mut(&r.table) {
            let check = normalise_expr(&r.definition);
            table.checks.entry(check).or_default().push(r.name);
        }
    }
    for r in rows.foreign_keys {
        if let Some(table) = model.tables.get_mut(&r.table) {
            table.foreign_keys.entry(r.key).or_default().push(r.name);
        }
    }
    model
}

fn on_delete(code: &str, table: &str, column: &str) -> diesel::QueryResult<OnDelete> {
    OnDelete::from_catalog(code).ok_or_else(|| {
        diesel::result::Error::DeserializationError(
            format!("unknown ON DELETE action `{code}` on {table}.{column}").into(),
        )
    })
}
