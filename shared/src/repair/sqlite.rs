//! SQLite repairs: `ALTER TABLE` there can add a column but change nothing else, so a table
//! that differs in more than its indexes is rebuilt the way SQLite's documentation
//! prescribes (<https://www.sqlite.org/lang_altertable.html#otheralter>): renamed aside,
//! created again exactly as the migrations create it, its rows copied over by column name,
//! the old one dropped, its indexes made again. The caller runs it in one transaction with
//! foreign keys off (and checks them before committing); `legacy_alter_table` keeps the
//! rename from rewriting other tables' references to the table.

use super::definitions::Definitions;
use super::{beyond, order, Probe, Step};
use crate::db::quote_ident as q;
use crate::schema::{check_clauses, normalise_expr, DifferenceKind as K, SchemaModel, TableModel};

/// The name a table is renamed to while it is rebuilt.
fn aside(table: &str) -> String {
    format!("__orch_repair_{table}")
}

pub(super) fn plan(
    expected: &SchemaModel,
    defs: &Definitions,
    live: &SchemaModel,
) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let create = |table: &str| {
        defs.create_table
            .get(table)
            .cloned()
            .ok_or_else(|| format!("no definition of table {table}"))
    };
    let indexes_of = |table: &str| -> Vec<String> {
        defs.indexes
            .values()
            .filter(|(t, _)| t == table)
            .map(|(_, sql)| sql.clone())
            .collect()
    };
    for (table, exp) in &expected.tables {
        let Some(found) = live.tables.get(table) else {
            let mut sql = vec![create(table)?];
            sql.extend(indexes_of(table));
            steps.push(Step::new(
                table,
                K::MissingTable,
                table,
                order::CREATE_TABLE,
                sql,
            ));
            continue;
        };
        let (changes, probes) = table_changes(table, exp, found, defs);
        if let Some((kind, _)) = changes.first() {
            let live_columns: Vec<&String> = found
                .columns
                .keys()
                .filter(|c| exp.columns.contains_key(*c))
                .collect();
            let columns = live_columns
                .iter()
                .map(|c| q(c))
                .collect::<Vec<_>>()
                .join(", ");
            let mut sql = vec![
                "PRAGMA legacy_alter_table = ON".to_string(),
                format!("ALTER TABLE {} RENAME TO {}", q(table), q(&aside(table))),
                create(table)?,
                format!(
                    "INSERT INTO {} ({columns}) SELECT {columns} FROM {}",
                    q(table),
                    q(&aside(table))
                ),
                format!("DROP TABLE {}", q(&aside(table))),
                "PRAGMA legacy_alter_table = OFF".to_string(),
            ];
            sql.extend(indexes_of(table));
            let object = changes
                .iter()
                .map(|(_, what)| what.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            let mut step = Step::new(table, *kind, &object, order::ALTER_COLUMN, sql);
            step.probes = probes;
            steps.push(step);
            continue;
        }
        // Indexes alone: dropped and created in place.
        steps.extend(super::index_steps(table, exp, found, defs)?);
    }
    Ok(steps)
}

/// What a rebuild of `table` changes, in words with each one's kind, and what must be
/// measured of its rows first. Empty when only indexes differ.
fn table_changes(
    table: &str,
    exp: &TableModel,
    live: &TableModel,
    defs: &Definitions,
) -> (Vec<(K, String)>, Vec<Probe>) {
    let mut changes = Vec::new();
    let mut probes = Vec::new();
    for (col, e) in &exp.columns {
        match live.columns.get(col) {
            None => {
                changes.push((K::MissingColumn, format!("column {col} added")));
                if !e.nullable && e.default.is_none() {
                    probes.push(Probe::EveryRow(col.clone()));
                }
            }
            Some(f) => {
                if e.data_type != f.data_type {
                    changes.push((K::ColumnType, format!("type of {col}")));
                }
                if e.nullable != f.nullable {
                    changes.push((K::ColumnNullability, format!("nullability of {col}")));
                    if !e.nullable {
                        probes.push(Probe::Nulls(col.clone()));
                    }
                }
                if e.default != f.default {
                    changes.push((K::ColumnDefault, format!("default of {col}")));
                }
            }
        }
    }
    for col in live.columns.keys() {
        if !exp.columns.contains_key(col) {
            changes.push((K::UnexpectedColumn, format!("column {col} dropped")));
            probes.push(Probe::ColumnValues(col.clone()));
        }
    }
    if exp.primary_key != live.primary_key {
        changes.push((K::PrimaryKey, "primary key".to_string()));
        if !exp.primary_key.is_empty() {
            probes.push(Probe::Duplicates(exp.primary_key.clone()));
            probes.extend(exp.primary_key.iter().cloned().map(Probe::Nulls));
        }
    }
    for (_, name) in beyond(&live.uniques, &exp.uniques) {
        changes.push((K::UnexpectedUnique, format!("unique {name} dropped")));
    }
    for (cols, name) in beyond(&exp.uniques, &live.uniques) {
        changes.push((K::MissingUnique, format!("unique {name} added")));
        probes.push(Probe::Duplicates(cols.clone()));
    }
    for (expr, _) in beyond(&live.checks, &exp.checks) {
        changes.push((K::UnexpectedCheck, format!("check ({expr}) dropped")));
    }
    let clauses = defs
        .create_table
        .get(table)
        .map(|sql| check_clauses(sql))
        .unwrap_or_default();
    for (expr, _) in beyond(&exp.checks, &live.checks) {
        changes.push((K::MissingCheck, format!("check ({expr}) added")));
        // The clause as written (the model's is normalised: lower case).
        let written = clauses
            .iter()
            .find(|c| normalise_expr(c) == *expr)
            .cloned()
            .unwrap_or_else(|| expr.clone());
        let written = written.trim();
        let inner = written
            .strip_prefix("CHECK")
            .or_else(|| written.strip_prefix("check"))
            .unwrap_or(written)
            .trim()
            .to_string();
        probes.push(Probe::Check(inner));
    }
    let extra = beyond(&live.foreign_keys, &exp.foreign_keys);
    let missing = beyond(&exp.foreign_keys, &live.foreign_keys);
    for (fk, _) in &extra {
        if !missing.iter().any(|(m, _)| m.target() == fk.target()) {
            changes.push((
                K::UnexpectedForeignKey,
                format!(
                    "foreign key {} → {}.{} dropped",
                    fk.column, fk.ref_table, fk.ref_column
                ),
            ));
        }
    }
    for (fk, _) in &missing {
        if extra.iter().any(|(x, _)| x.target() == fk.target()) {
            changes.push((
                K::ForeignKeyAction,
                format!("ON DELETE {} for {}", fk.on_delete, fk.column),
            ));
        } else {
            changes.push((
                K::MissingForeignKey,
                format!(
                    "foreign key {} → {}.{} added",
                    fk.column, fk.ref_table, fk.ref_column
                ),
            ));
            probes.push(Probe::Orphans {
                column: fk.column.clone(),
                ref_table: fk.ref_table.clone(),
                ref_column: fk.ref_column.clone(),
            });
        }
    }
    // Indexes come back with a rebuilt table; named when they differ.
    if !changes.is_empty() {
        for (_, name) in beyond(&live.indexes, &exp.indexes) {
            changes.push((K::UnexpectedIndex, format!("index {name} dropped")));
        }
        for (_, name) in beyond(&exp.indexes, &live.indexes) {
            changes.push((K::MissingIndex, format!("index {name} created")));
        }
    }
    (changes, probes)
}
