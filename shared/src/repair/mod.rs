//! Repair in place: the steps that bring a live schema to what the migrations make while
//! keeping the data, each classed by what the data allows (see [`Class`]), then run in one
//! transaction and proven (the comparison finds nothing).
//!
//! The steps come from the two models, table by table, and are written with the exact
//! SQL of the migrations' own database ([`definitions`]): PostgreSQL alters in place
//! (`postgres.rs`); SQLite, whose `ALTER TABLE` cannot change a column or a constraint,
//! rebuilds a table that differs in more than its indexes (`sqlite.rs`), as SQLite's
//! documentation prescribes. What each step would do to the rows is measured before
//! anything runs (`probe.rs`).

pub mod definitions;
mod dependents;
mod postgres;
mod probe;
pub mod recorded;
mod sqlite;

use serde::Serialize;

use crate::db::Conn;
use crate::schema::{DifferenceKind, Named, SchemaModel};
use crate::url::Backend;
pub use definitions::Definitions;
pub use probe::classify;

/// What a step does to the rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum Class {
    /// No row is lost and none stands in the way.
    Safe,
    /// Drops values that rows hold (a column or a table): needs `--force`, backed up.
    DestroysData { rows: i64 },
    /// Rows the change cannot hold (NULLs for NOT NULL, duplicates for a unique, orphans
    /// for a foreign key, values the new type or a check refuses): refused.
    BlockedByData {
        rows: i64,
        /// Up to ten of them, by primary key.
        sample: Vec<String>,
        why: String,
    },
    /// Objects outside the repair's reach that depend on what the step changes or drops
    /// (a view, a policy, a foreign key from a table the store does not know): the step
    /// would fail on them, or (CASCADE) destroy them. Refused, each named.
    BlockedByDependents { objects: Vec<String> },
}

/// What must be measured of the rows before a step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Rows the dropped table holds.
    TableRows,
    /// Non-NULL values of a column that is dropped.
    ColumnValues(String),
    /// A NOT NULL column without a default, added to a table: every row stands in the way.
    EveryRow(String),
    /// NULLs in a column that becomes NOT NULL.
    Nulls(String),
    /// Rows sharing values over columns that become unique (NULLs never collide).
    Duplicates(Vec<String>),
    /// Rows whose value has no row in the referenced table.
    Orphans {
        column: String,
        ref_table: String,
        ref_column: String,
    },
    /// Rows a check expression refuses.
    Check(String),
    /// Values that do not convert to a column's new type (PostgreSQL).
    Cast { column: String, sql_type: String },
    /// Objects outside the repair that depend on what the step changes or drops
    /// (PostgreSQL).
    Dependents(Depended),
}

/// What a step changes or drops, for [`Probe::Dependents`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Depended {
    /// The table, dropped.
    Table,
    /// A column, altered or (`drops`) dropped.
    Column { name: String, drops: bool },
    /// An index, dropped.
    Index(String),
    /// A unique constraint (its index), dropped.
    Constraint(String),
    /// The table's primary key (its index), replaced.
    PrimaryKey,
}

/// One step of a repair: what it changes, its SQL, and (once probed) its class.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub table: String,
    pub kind: DifferenceKind,
    /// The column, constraint or index concerned (the table itself for table steps).
    pub object: String,
    pub sql: Vec<String>,
    #[serde(flatten)]
    pub class: Class,
    /// When it runs: drops of what stands in the way first, creations after, foreign keys
    /// last but one, dropped tables last.
    #[serde(skip)]
    pub order: u8,
    #[serde(skip)]
    pub probes: Vec<Probe>,
}

impl Step {
    fn new(table: &str, kind: DifferenceKind, object: &str, order: u8, sql: Vec<String>) -> Step {
        Step {
            table: table.to_string(),
            kind,
            object: object.to_string(),
            sql,
            class: Class::Safe,
            order,
            probes: Vec::new(),
        }
    }

    fn probing(mut self, probe: Probe) -> Step {
        self.probes.push(probe);
        self
    }
}

/// The order steps run in (see [`Step::order`]).
mod order {
    pub const DROP_FOREIGN_KEY: u8 = 0;
    pub const DROP_CONSTRAINT: u8 = 1;
    pub const DROP_COLUMN: u8 = 2;
    pub const CREATE_TABLE: u8 = 3;
    pub const ADD_COLUMN: u8 = 4;
    pub const ALTER_COLUMN: u8 = 5;
    pub const PRIMARY_KEY: u8 = 6;
    pub const ADD_CONSTRAINT: u8 = 7;
    pub const ADD_FOREIGN_KEY: u8 = 8;
    pub const DROP_TABLE: u8 = 9;
}

/// The steps that bring `live` to `expected` on `backend`, in the order they run, not yet
/// classed ([`classify`] measures the rows).
pub fn plan(
    backend: Backend,
    expected: &SchemaModel,
    definitions: &Definitions,
    live: &SchemaModel,
) -> Result<Vec<Step>, String> {
    let mut steps = match backend {
        Backend::Postgres => postgres::plan(expected, definitions, live)?,
        Backend::Sqlite => sqlite::plan(expected, definitions, live)?,
    };
    // What the migrations do not make goes last, by its name, on either backend.
    for table in live.tables.keys() {
        if !expected.tables.contains_key(table) {
            steps.push(
                Step::new(
                    table,
                    DifferenceKind::UnexpectedTable,
                    table,
                    order::DROP_TABLE,
                    vec![format!("DROP TABLE {}", crate::db::quote_ident(table))],
                )
                .probing(Probe::TableRows)
                .probing(Probe::Dependents(Depended::Table)),
            );
        }
    }
    steps.sort_by_key(|s| s.order);
    Ok(steps)
}

/// The names that carry a definition in `of` but not (as many times) in `than`, for each
/// definition: what is missing from `than`, or in excess in it, name by name. Names both
/// sides carry are kept first, so an extra copy is the one reported.
pub(crate) fn beyond<'a, K: Ord>(of: &'a Named<K>, than: &'a Named<K>) -> Vec<(&'a K, &'a str)> {
    let none = Vec::new();
    let mut out = Vec::new();
    for (key, names) in of {
        let other = than.get(key).unwrap_or(&none);
        let mut ordered: Vec<&String> = names.iter().filter(|n| other.contains(n)).collect();
        ordered.extend(names.iter().filter(|n| !other.contains(n)));
        out.extend(
            ordered
                .into_iter()
                .skip(other.len())
                .map(|n| (key, n.as_str())),
        );
    }
    out
}

/// The indexes of `table` that `live` has too many of (dropped by their own names) and
/// lacks (created as the migrations' database writes them), on either backend.
fn index_steps(
    table: &str,
    exp: &crate::schema::TableModel,
    live: &crate::schema::TableModel,
    defs: &Definitions,
) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for (_, name) in beyond(&live.indexes, &exp.indexes) {
        steps.push(
            Step::new(
                table,
                DifferenceKind::UnexpectedIndex,
                name,
                order::DROP_CONSTRAINT,
                vec![format!("DROP INDEX {}", crate::db::quote_ident(name))],
            )
            .probing(Probe::Dependents(Depended::Index(name.to_string()))),
        );
    }
    for (ix, name) in beyond(&exp.indexes, &live.indexes) {
        let (_, sql) = defs
            .indexes
            .get(name)
            .ok_or_else(|| format!("no definition of index {name}"))?;
        let mut step = Step::new(
            table,
            DifferenceKind::MissingIndex,
            name,
            order::ADD_CONSTRAINT,
            vec![sql.clone()],
        );
        if ix.unique && ix.predicate.is_none() {
            step = step.probing(Probe::Duplicates(
                ix.columns.iter().map(|c| c.expr.clone()).collect(),
            ));
        }
        steps.push(step);
    }
    Ok(steps)
}

/// Runs `steps` on `conn`, inside the caller's transaction, one statement at a time so
/// that a failure names the step.
pub fn apply(conn: &mut Conn, steps: &[Step]) -> Result<(), String> {
    for step in steps {
        for sql in &step.sql {
            conn.batch_execute(sql).map_err(|e| {
                format!(
                    "{} {} of {}: {}",
                    step.kind,
                    step.object,
                    step.table,
                    crate::db::one_line(&e.to_string())
                )
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
