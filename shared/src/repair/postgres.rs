//! PostgreSQL repairs in place: `ALTER TABLE` for columns and constraints, `CREATE` and
//! `DROP INDEX`, each written as the migrations' database spells it.

use super::definitions::{column_clause, Definitions};
use super::{beyond, order, Depended, Probe, Step};
use crate::db::{quote_ident as q, quote_literal};
use crate::schema::{DifferenceKind as K, SchemaModel, TableModel};

pub(super) fn plan(
    expected: &SchemaModel,
    defs: &Definitions,
    live: &SchemaModel,
) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for (table, exp) in &expected.tables {
        let found = match live.tables.get(table) {
            Some(found) => found,
            None => {
                let sql = defs
                    .create_table
                    .get(table)
                    .ok_or_else(|| format!("no definition of table {table}"))?;
                steps.push(Step::new(
                    table,
                    K::MissingTable,
                    table,
                    order::CREATE_TABLE,
                    vec![sql.clone()],
                ));
                // Its columns, keys, uniques and checks came with it; the rest follows.
                let mut bare = exp.clone();
                bare.indexes.clear();
                bare.foreign_keys.clear();
                table_steps(table, exp, &bare, defs, &mut steps)?;
                continue;
            }
        };
        table_steps(table, exp, found, defs, &mut steps)?;
    }
    Ok(steps)
}

fn table_steps(
    table: &str,
    exp: &TableModel,
    live: &TableModel,
    defs: &Definitions,
    steps: &mut Vec<Step>,
) -> Result<(), String> {
    let t = q(table);
    let alter = |rest: String| format!("ALTER TABLE {t} {rest}");
    for (col, e) in &exp.columns {
        let def = defs
            .columns
            .get(&(table.to_string(), col.clone()))
            .ok_or_else(|| format!("no definition of column {table}.{col}"))?;
        let c = q(col);
        let Some(f) = live.columns.get(col) else {
            let mut step = Step::new(
                table,
                K::MissingColumn,
                col,
                order::ADD_COLUMN,
                vec![alter(format!("ADD COLUMN {c} {}", column_clause(def)))],
            );
            if def.not_null && def.default.is_none() {
                step = step.probing(Probe::EveryRow(col.clone()));
            }
            steps.push(step);
            continue;
        };
        if e.data_type != f.data_type {
            steps.push(
                Step::new(
                    table,
                    K::ColumnType,
                    col,
                    order::ALTER_COLUMN,
                    vec![alter(format!(
                        "ALTER COLUMN {c} TYPE {ty} USING {c}::{ty}",
                        ty = def.sql_type
                    ))],
                )
                .probing(Probe::Cast {
                    column: col.clone(),
                    sql_type: def.sql_type.clone(),
                })
                .probing(Probe::Dependents(Depended::Column {
                    name: col.clone(),
                    drops: false,
                })),
            );
        }
        if e.nullable != f.nullable {
            let step = if e.nullable {
                Step::new(
                    table,
                    K::ColumnNullability,
                    col,
                    order::ALTER_COLUMN,
                    vec![alter(format!("ALTER COLUMN {c} DROP NOT NULL"))],
                )
            } else {
                Step::new(
                    table,
                    K::ColumnNullability,
                    col,
                    order::ALTER_COLUMN,
                    vec![alter(format!("ALTER COLUMN {c} SET NOT NULL"))],
                )
                .probing(Probe::Nulls(col.clone()))
            };
            steps.push(step);
        }
        if e.default != f.default {
            let set = match &def.default {
                Some(d) => format!("ALTER COLUMN {c} SET DEFAULT {d}"),
                None => format!("ALTER COLUMN {c} DROP DEFAULT"),
            };
            steps.push(Step::new(
                table,
                K::ColumnDefault,
                col,
                order::ALTER_COLUMN,
                vec![alter(set)],
            ));
        }
    }
    for col in live.columns.keys() {
        if !exp.columns.contains_key(col) {
            steps.push(
                Step::new(
                    table,
                    K::UnexpectedColumn,
                    col,
                    order::DROP_COLUMN,
                    vec![alter(format!("DROP COLUMN {}", q(col)))],
                )
                .probing(Probe::ColumnValues(col.clone()))
                .probing(Probe::Dependents(Depended::Column {
                    name: col.clone(),
                    drops: true,
                })),
            );
        }
    }
    if exp.primary_key != live.primary_key {
        let mut sql = Vec::new();
        if !live.primary_key.is_empty() {
            // The live key's name is the live database's own: looked up when it runs.
            sql.push(format!(
                "DO $orch$ BEGIN EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', {name}, \
                 (SELECT conname FROM pg_constraint WHERE conrelid = {rel}::regclass AND contype = 'p')); \
                 END $orch$",
                name = quote_literal(table),
                rel = quote_literal(&t)
            ));
        }
        if let Some((name, def)) = defs
            .constraints
            .iter()
            .find(|((tb, _), d)| tb == table && d.starts_with("PRIMARY KEY"))
        {
            sql.push(alter(format!("ADD CONSTRAINT {} {def}", q(&name.1))));
        }
        let mut step = Step::new(table, K::PrimaryKey, "primary key", order::PRIMARY_KEY, sql);
        if !live.primary_key.is_empty() {
            step = step.probing(Probe::Dependents(Depended::PrimaryKey));
        }
        if !exp.primary_key.is_empty() {
            step = step.probing(Probe::Duplicates(exp.primary_key.clone()));
            for col in &exp.primary_key {
                step = step.probing(Probe::Nulls(col.clone()));
            }
        }
        steps.push(step);
    }
    constraint_steps(table, exp, live, defs, steps)
}

/// Uniques, checks, foreign keys and indexes: multisets of definitions, compared name by
/// name ([`beyond`]); what the live table has too many of is dropped by its own name,
/// what it lacks is added under the migrations' name.
fn constraint_steps(
    table: &str,
    exp: &TableModel,
    live: &TableModel,
    defs: &Definitions,
    steps: &mut Vec<Step>,
) -> Result<(), String> {
    let t = q(table);
    let drop_constraint = |kind, name: &str, order| {
        Step::new(
            table,
            kind,
            name,
            order,
            vec![format!("ALTER TABLE {t} DROP CONSTRAINT {}", q(name))],
        )
    };
    let constraint = |name: &str| {
        defs.constraints
            .get(&(table.to_string(), name.to_string()))
            .ok_or_else(|| format!("no definition of constraint {name} of {table}"))
    };
    let add_constraint = |kind, name: &str, order| -> Result<Step, String> {
        Ok(Step::new(
            table,
            kind,
            name,
            order,
            vec![format!(
                "ALTER TABLE {t} ADD CONSTRAINT {} {}",
                q(name),
                constraint(name)?
            )],
        ))
    };
    for (_, name) in beyond(&live.uniques, &exp.uniques) {
        steps.push(
            drop_constraint(K::UnexpectedUnique, name, order::DROP_CONSTRAINT)
                .probing(Probe::Dependents(Depended::Constraint(name.to_string()))),
        );
    }
    for (cols, name) in beyond(&exp.uniques, &live.uniques) {
        steps.push(
            add_constraint(K::MissingUnique, name, order::ADD_CONSTRAINT)?
                .probing(Probe::Duplicates(cols.clone())),
        );
    }
    for (_, name) in beyond(&live.checks, &exp.checks) {
        steps.push(drop_constraint(
            K::UnexpectedCheck,
            name,
            order::DROP_CONSTRAINT,
        ));
    }
    for (_, name) in beyond(&exp.checks, &live.checks) {
        let def = constraint(name)?;
        let expr = def
            .trim_start_matches("CHECK")
            .trim()
            .trim_end_matches("NOT VALID")
            .trim()
            .to_string();
        steps.push(
            add_constraint(K::MissingCheck, name, order::ADD_CONSTRAINT)?
                .probing(Probe::Check(expr)),
        );
    }
    // A foreign key whose ON DELETE changed is dropped and added again: the pair is one
    // difference, `foreign_key_action`, as `diff` reports it.
    let extra_fks = beyond(&live.foreign_keys, &exp.foreign_keys);
    let missing_fks = beyond(&exp.foreign_keys, &live.foreign_keys);
    for (fk, name) in &extra_fks {
        let action = missing_fks.iter().any(|(m, _)| m.target() == fk.target());
        let kind = if action {
            K::ForeignKeyAction
        } else {
            K::UnexpectedForeignKey
        };
        steps.push(drop_constraint(kind, name, order::DROP_FOREIGN_KEY));
    }
    for (fk, name) in &missing_fks {
        let action = extra_fks.iter().any(|(x, _)| x.target() == fk.target());
        let kind = if action {
            K::ForeignKeyAction
        } else {
            K::MissingForeignKey
        };
        let mut step = add_constraint(kind, name, order::ADD_FOREIGN_KEY)?;
        if !action {
            step = step.probing(Probe::Orphans {
                column: fk.column.clone(),
                ref_table: fk.ref_table.clone(),
                ref_column: fk.ref_column.clone(),
            });
        }
        steps.push(step);
    }
    steps.extend(super::index_steps(table, exp, live, defs)?);
    Ok(())
}
