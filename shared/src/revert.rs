//! Reverting applied migrations with their embedded `down.sql`: which ones a revert
//! covers, what they would destroy (found by running them in a transaction that is rolled
//! back), and running them, each in its own transaction with its bookkeeping rows.
//!
//! The SQL here is the same on both backends (double-quoted identifiers, `COUNT`).

use diesel::sql_types::BigInt;
use diesel::QueryableByName;
use serde::Serialize;

use crate::catalog::{self, DIESEL_MIGRATIONS_TABLE, ORCHESTRATOR_MIGRATIONS_TABLE};
use crate::db::{quote_ident, quote_literal, Conn};
use crate::migrations::{shipped, BoxError};
use crate::schema::{self, SchemaModel};
use crate::store::Store;

/// How far back a revert goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The newest `n` applied migrations.
    Steps(usize),
    /// Every applied migration newer than this version (diesel's form), which stays.
    Keep(String),
}

/// One applied migration to revert.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub version: String,
    pub name: String,
    pub down: String,
}

/// A table the revert drops, with its rows before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LostTable {
    pub table: String,
    pub rows: i64,
}

/// A column the revert drops from a table that stays, with its non-NULL values before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LostColumn {
    pub table: String,
    pub column: String,
    pub values: i64,
}

/// What a revert destroys: tables that vanish, columns that vanish from tables that stay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Loss {
    pub tables: Vec<LostTable>,
    pub columns: Vec<LostColumn>,
}

impl Loss {
    /// The lost tables and columns that hold data, for people: `table users (3 rows)`.
    pub fn holding(&self) -> Vec<String> {
        let tables = self
            .tables
            .iter()
            .filter(|t| t.rows > 0)
            .map(|t| format!("table {} ({} rows)", t.table, t.rows));
        let columns = self
            .columns
            .iter()
            .filter(|c| c.values > 0)
            .map(|c| format!("column {}.{} ({} values)", c.table, c.column, c.values));
        tables.chain(columns).collect()
    }

    /// Everything lost, data or not, for people.
    pub fn describe(&self) -> Vec<String> {
        let tables = self
            .tables
            .iter()
            .map(|t| format!("table {} ({} rows)", t.table, t.rows));
        let columns = self
            .columns
            .iter()
            .map(|c| format!("column {}.{} ({} values)", c.table, c.column, c.values));
        tables.chain(columns).collect()
    }
}

/// The applied migrations `target` covers, newest first, with their `down.sql`. A version
/// this build does not ship, or a migration without `down.sql`, cannot be reverted: the
/// error names it.
pub fn plan(conn: &mut Conn, store: &Store, target: &Target) -> Result<Vec<Step>, String> {
    let backend = conn.backend();
    let applied = catalog::applied_versions(conn).map_err(|e| e.to_string())?;
    let shipped = shipped(store, backend).map_err(|e| e.to_string())?;
    let sql = store.migrations.sql_for(backend);
    let chosen: Vec<&String> = match target {
        Target::Steps(n) => applied.iter().rev().take(*n).collect(),
        Target::Keep(keep) => applied
            .iter()
            .rev()
            .filter(|v| v.as_str() > keep.as_str())
            .collect(),
    };
    chosen
        .into_iter()
        .map(|version| {
            let name = shipped
                .iter()
                .find(|(v, _)| v == version)
                .map(|(_, n)| n.clone())
                .ok_or_else(|| {
                    format!(
                        "the {} database records migration {version}, which this build does not ship, so it has no down.sql to run",
                        store.name
                    )
                })?;
            let down = sql
                .iter()
                .find(|m| m.name == name)
                .and_then(|m| m.down)
                .ok_or_else(|| format!("{} migration {name} has no down.sql", store.name))?;
            Ok(Step {
                version: version.clone(),
                name,
                down: down.to_string(),
            })
        })
        .collect()
}

/// Runs the steps' `down.sql` in a transaction that is rolled back, reading the schema
/// before and after, and counts (in the state before, which the rollback restores) the
/// rows of the tables that vanish and the values of the columns that vanish from tables
/// that stay. A `down.sql` that fails is an error naming it; nothing is changed either way.
pub fn rehearse(conn: &mut Conn, steps: &[Step]) -> Result<Loss, BoxError> {
    if steps.is_empty() {
        return Ok(Loss::default());
    }
    crate::admin::begin(conn)?;
    let models = before_and_after(conn, steps);
    // Whatever happened, the rehearsal leaves nothing behind.
    let rolled_back = crate::admin::rollback(conn);
    let (before, after) = models?;
    rolled_back?;
    let (tables, columns) = vanishing(&before, &after);
    // Counted in a transaction of their own, past row-level security (PostgreSQL).
    crate::admin::begin(conn)?;
    let counted = count_loss(conn, tables, columns);
    let rolled_back = crate::admin::rollback(conn);
    let loss = counted?;
    rolled_back?;
    Ok(loss)
}

/// A count's error, with what to do when row-level security stopped it (PostgreSQL).
fn explained(postgres: bool) -> impl Fn(diesel::result::Error) -> BoxError {
    move |e| {
        if postgres {
            crate::revert_postgres::explain(&e).into()
        } else {
            e.into()
        }
    }
}

fn count_loss(
    conn: &mut Conn,
    tables: Vec<String>,
    columns: Vec<(String, String)>,
) -> Result<Loss, BoxError> {
    let postgres = conn.backend() == crate::Backend::Postgres;
    if postgres {
        crate::revert_postgres::count_every_row(conn)?;
    }
    let explain = explained(postgres);
    let counted = catalog::row_counts(conn, &tables).map_err(&explain)?;
    let tables = tables
        .into_iter()
        .map(|table| {
            let rows = counted
                .iter()
                .find(|(t, _)| *t == table)
                .map_or(0, |(_, n)| *n);
            LostTable { table, rows }
        })
        .collect();
    let mut lost_columns = Vec::with_capacity(columns.len());
    for (table, column) in columns {
        let values = non_null_values(conn, &table, &column).map_err(&explain)?;
        lost_columns.push(LostColumn {
            table,
            column,
            values,
        });
    }
    Ok(Loss {
        tables,
        columns: lost_columns,
    })
}

fn before_and_after(
    conn: &mut Conn,
    steps: &[Step],
) -> Result<(SchemaModel, SchemaModel), BoxError> {
    let before = schema::introspect(conn)?;
    for step in steps {
        conn.batch_execute(&step.down)
            .map_err(|e| format!("the down.sql of {} fails: {e}", step.name))?;
    }
    let after = schema::introspect(conn)?;
    Ok((before, after))
}

/// Tables of `before` missing from `after`, and columns missing from tables in both.
fn vanishing(before: &SchemaModel, after: &SchemaModel) -> (Vec<String>, Vec<(String, String)>) {
    let mut tables = Vec::new();
    let mut columns = Vec::new();
    for (name, table) in &before.tables {
        match after.tables.get(name) {
            None => tables.push(name.clone()),
            Some(kept) => columns.extend(
                table
                    .columns
                    .keys()
                    .filter(|c| !kept.columns.contains_key(*c))
                    .map(|c| (name.clone(), c.clone())),
            ),
        }
    }
    (tables, columns)
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn non_null_values(conn: &mut Conn, table: &str, column: &str) -> diesel::QueryResult<i64> {
    let sql = format!(
        "SELECT COUNT({}) AS n FROM {}",
        quote_ident(column),
        quote_ident(table)
    );
    let row: Count = crate::with_conn!(conn, |c| diesel::RunQueryDsl::get_result(
        diesel::sql_query(&sql),
        c
    ))?;
    Ok(row.n)
}

/// Reverts one migration: its `down.sql`, diesel's record of it and our checksum record,
/// in one transaction, so a crash leaves it either applied and recorded or neither.
///
/// `checked` is what the guard counted (and a backup holds) before the run: inside the
/// transaction, with the tables it may drop locked, the tables and columns still there
/// are counted again, and a store that gained data since is not reverted (an error naming
/// it), so nothing written after the guard looked is destroyed unseen.
pub fn revert_step(conn: &mut Conn, step: &Step, checked: &Loss) -> Result<(), BoxError> {
    crate::admin::begin(conn)?;
    let done = fence(conn, checked).and_then(|()| {
        conn.batch_execute(&step.down)?;
        let forget = forget(conn, &step.version)?;
        conn.batch_execute(&forget)?;
        Ok(())
    });
    match done {
        Ok(()) => Ok(crate::admin::commit(conn)?),
        Err(e) => {
            // The error is the news; a failed rollback ends with the session anyway.
            let _ = crate::admin::rollback(conn);
            Err(e)
        }
    }
}

/// Deletes the migration's rows from diesel's table and from ours (when it exists).
fn forget(conn: &mut Conn, version: &str) -> Result<String, BoxError> {
    let version = quote_literal(version);
    let mut sql = format!("DELETE FROM {DIESEL_MIGRATIONS_TABLE} WHERE version = {version};");
    if catalog::has_table(conn, ORCHESTRATOR_MIGRATIONS_TABLE)? {
        sql.push_str(&format!(
            "\nDELETE FROM {ORCHESTRATOR_MIGRATIONS_TABLE} WHERE version = {version};"
        ));
    }
    Ok(sql)
}

/// Recounts, in the caller's transaction, what `checked` counted; more than it found is
/// an error.
fn fence(conn: &mut Conn, checked: &Loss) -> Result<(), BoxError> {
    let mut named: Vec<&str> = checked
        .tables
        .iter()
        .map(|t| t.table.as_str())
        .chain(checked.columns.iter().map(|c| c.table.as_str()))
        .collect();
    named.sort_unstable();
    named.dedup();
    // Those of them still there, in byte order as before (the database's may differ).
    let mut tables = catalog::tables_named(conn, &named)?;
    tables.sort();
    let postgres = conn.backend() == crate::Backend::Postgres;
    if postgres {
        crate::revert_postgres::lock_tables(conn, &tables)?;
        crate::revert_postgres::count_every_row(conn)?;
    }
    let explain = explained(postgres);
    let mut grown = Vec::new();
    for (table, rows) in catalog::row_counts(conn, &tables).map_err(&explain)? {
        let before = checked.tables.iter().find(|t| t.table == table);
        if let Some(before) = before.filter(|b| rows > b.rows) {
            grown.push(format!("table {table} ({} rows, {rows} now)", before.rows));
        }
    }
    let live = catalog::columns(conn)?;
    for c in &checked.columns {
        if !live
            .iter()
            .any(|l| l.table == c.table && l.name == c.column)
        {
            continue;
        }
        let values = non_null_values(conn, &c.table, &c.column).map_err(&explain)?;
        if values > c.values {
            grown.push(format!(
                "column {}.{} ({} values, {values} now)",
                c.table, c.column, c.values
            ));
        }
    }
    if grown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "data was written since the guard counted it: {}; this migration was not reverted, run the revert again",
            grown.join(", ")
        )
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holding_names_only_what_holds_data() {
        let loss = Loss {
            tables: vec![
                LostTable {
                    table: "documents".into(),
                    rows: 2,
                },
                LostTable {
                    table: "jobs".into(),
                    rows: 0,
                },
            ],
            columns: vec![LostColumn {
                table: "users".into(),
                column: "nick".into(),
                values: 1,
            }],
        };
        assert_eq!(
            loss.holding(),
            ["table documents (2 rows)", "column users.nick (1 values)"]
        );
        assert_eq!(loss.describe().len(), 3);
        assert!(Loss::default().holding().is_empty());
    }

    #[test]
    fn vanishing_finds_dropped_tables_and_columns_of_kept_tables() {
        let column = || crate::schema::ColumnModel {
            data_type: "text".into(),
            nullable: true,
            default: None,
        };
        let table = |cols: &[&str]| crate::schema::TableModel {
            columns: cols.iter().map(|c| (c.to_string(), column())).collect(),
            ..Default::default()
        };
        let mut before = SchemaModel::default();
        before.tables.insert("users".into(), table(&["id", "nick"]));
        before.tables.insert("teams".into(), table(&["id"]));
        let mut after = SchemaModel::default();
        after.tables.insert("users".into(), table(&["id"]));
        let (tables, columns) = vanishing(&before, &after);
        assert_eq!(tables, ["teams"]);
        assert_eq!(columns, [("users".to_string(), "nick".to_string())]);
    }
}
