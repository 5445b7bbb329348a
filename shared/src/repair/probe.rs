//! What each step would do to the rows, measured before anything runs: the rows a drop
//! destroys, and the rows that stand in the way of a change (counted, and up to ten named
//! by primary key). Each measurement runs in a savepoint of its own, so one that fails
//! (an expression the live table cannot evaluate) says so and disturbs nothing.

use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, RunQueryDsl};

use super::{Class, Probe, Step};
use crate::db::{quote_ident as q, quote_literal, Conn};
use crate::schema::{SchemaModel, TableModel};

/// Rows named per blocked step.
const SAMPLE: usize = 10;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Value {
    #[diesel(sql_type = Text)]
    v: String,
}

/// Classes every step by probing `conn`'s rows (`live` is the model read from it), inside
/// the caller's transaction (each probe takes a savepoint of it): the repair's own, so
/// that the rows measured are the rows changed. On PostgreSQL the rest of that transaction
/// runs with `row_security` off.
pub fn classify(conn: &mut Conn, live: &SchemaModel, steps: &mut [Step]) -> Result<(), String> {
    let postgres = matches!(conn, Conn::Postgres(_));
    if postgres {
        // Every row counts, whatever row-level security would show this role: a probe a
        // policy would filter fails instead (and the step is blocked, saying why), as
        // the guard's inventory and revert count (see `revert_postgres`).
        crate::revert_postgres::count_every_row(conn)
            .map_err(|e| format!("turning row security off: {e}"))?;
    }
    let casts = steps
        .iter()
        .any(|s| s.probes.iter().any(|p| matches!(p, Probe::Cast { .. })));
    if casts && postgres {
        // One conversion at a time, so that each failing value is found (the ALTER itself
        // stops at the first). Temporary, and dropped again below.
        conn.batch_execute(
            "CREATE FUNCTION pg_temp.orch_castable(v text, t text) RETURNS boolean \
             LANGUAGE plpgsql AS $f$ BEGIN EXECUTE format('SELECT %L::%s', v, t); RETURN true; \
             EXCEPTION WHEN others THEN RETURN false; END $f$",
        )
        .map_err(|e| format!("preparing the type checks: {e}"))?;
    }
    for step in steps.iter_mut() {
        // A table the repair creates holds no rows yet.
        let Some(table) = live.tables.get(&step.table) else {
            continue;
        };
        let mut class = Class::Safe;
        for probe in &step.probes {
            let found = measure(conn, &step.table, table, live, probe)?;
            class = worse(class, found);
        }
        step.class = class;
    }
    if casts && postgres {
        conn.batch_execute("DROP FUNCTION pg_temp.orch_castable(text, text)")
            .map_err(|e| format!("dropping the type checks: {e}"))?;
    }
    Ok(())
}

/// Blocked beats destroying, which beats safe; rows add up within a class.
fn worse(a: Class, b: Class) -> Class {
    match (a, b) {
        (
            Class::BlockedByDependents { mut objects },
            Class::BlockedByDependents { objects: more },
        ) => {
            objects.extend(more);
            Class::BlockedByDependents { objects }
        }
        (blocked @ Class::BlockedByDependents { .. }, _)
        | (_, blocked @ Class::BlockedByDependents { .. }) => blocked,
        (Class::BlockedByData { rows, sample, why }, Class::BlockedByData { rows: r2, .. }) => {
            Class::BlockedByData {
                rows: rows.max(r2),
                sample,
                why,
            }
        }
        (blocked @ Class::BlockedByData { .. }, _) | (_, blocked @ Class::BlockedByData { .. }) => {
            blocked
        }
        (Class::DestroysData { rows }, Class::DestroysData { rows: r2 }) => {
            Class::DestroysData { rows: rows.max(r2) }
        }
        (d @ Class::DestroysData { .. }, _) | (_, d @ Class::DestroysData { .. }) => d,
        _ => Class::Safe,
    }
}

/// The rows `probe` is about, as a condition on `table`, and what they mean.
fn condition(
    conn: &Conn,
    table: &str,
    model: &TableModel,
    live: &SchemaModel,
    probe: &Probe,
) -> Option<(String, Option<String>)> {
    let has = |c: &String| model.columns.contains_key(c);
    let t = q(table);
    Some(match probe {
        Probe::TableRows => ("1 = 1".into(), None),
        Probe::ColumnValues(c) if has(c) => (format!("{} IS NOT NULL", q(c)), None),
        Probe::EveryRow(c) => (
            "1 = 1".into(),
            Some(format!(
                "rows: the new column {c} is NOT NULL and has no default to fill them with"
            )),
        ),
        Probe::Nulls(c) if has(c) => (
            format!("{} IS NULL", q(c)),
            Some(format!("NULLs in {c}, which becomes NOT NULL")),
        ),
        Probe::Duplicates(cols) if cols.iter().all(has) => {
            let list = cols.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ");
            let not_null = cols
                .iter()
                .map(|c| format!("{} IS NOT NULL", q(c)))
                .collect::<Vec<_>>()
                .join(" AND ");
            let lhs = if cols.len() == 1 {
                list.clone()
            } else {
                format!("({list})")
            };
            (
                format!(
                    "{lhs} IN (SELECT {list} FROM {t} WHERE {not_null} GROUP BY {list} HAVING count(*) > 1)"
                ),
                Some(format!("rows share values of ({}), which become unique", cols.join(", "))),
            )
        }
        Probe::Orphans {
            column,
            ref_table,
            ref_column,
        } if has(column) => {
            let target = live
                .tables
                .get(ref_table)
                .is_some_and(|r| r.columns.contains_key(ref_column));
            let cond = if target {
                format!(
                    "{c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {rt} orch_ref WHERE orch_ref.{rc} = {t}.{c})",
                    c = q(column),
                    rt = q(ref_table),
                    rc = q(ref_column)
                )
            } else {
                format!("{} IS NOT NULL", q(column))
            };
            (
                cond,
                Some(format!(
                    "values of {column} with no row in {ref_table}.{ref_column}"
                )),
            )
        }
        Probe::Check(expr) => (
            format!("NOT ({expr})"),
            Some(format!("rows the check ({expr}) refuses")),
        ),
        Probe::Cast { column, sql_type } if has(column) && matches!(conn, Conn::Postgres(_)) => (
            format!(
                "{c} IS NOT NULL AND NOT pg_temp.orch_castable({c}::text, {ty})",
                c = q(column),
                ty = quote_literal(sql_type)
            ),
            Some(format!("values of {column} that are not {sql_type}")),
        ),
        _ => return None,
    })
}

fn measure(
    conn: &mut Conn,
    table: &str,
    model: &TableModel,
    live: &SchemaModel,
    probe: &Probe,
) -> Result<Class, String> {
    if let (Probe::Dependents(target), Conn::Postgres(_)) = (probe, &*conn) {
        let known: Vec<String> = live.tables.keys().cloned().collect();
        let objects = in_savepoint(conn, |c| match c {
            Conn::Postgres(pg) => super::dependents::blocking(pg, table, target, &known),
            Conn::Sqlite(_) => Ok(Vec::new()),
        })
        .map_err(|e| format!("reading what depends on {table}: {e}"))?;
        return Ok(if objects.is_empty() {
            Class::Safe
        } else {
            Class::BlockedByDependents { objects }
        });
    }
    let Some((cond, blocked_why)) = condition(conn, table, model, live, probe) else {
        return Ok(Class::Safe);
    };
    // Converting every value at once is fast; only when that fails is each value tried
    // on its own, to name the ones that do not convert.
    if let Probe::Cast { column, sql_type } = probe {
        let all = format!(
            "SELECT count(CAST({} AS {sql_type})) AS n FROM {}",
            q(column),
            q(table)
        );
        let converted = in_savepoint(conn, |c| {
            crate::with_conn!(c, |c| diesel::sql_query(&all).get_result::<Count>(c))
        });
        if converted.is_ok() {
            return Ok(Class::Safe);
        }
    }
    let t = q(table);
    let key = row_key(conn, model);
    let count_sql = format!("SELECT count(*) AS n FROM {t} WHERE {cond}");
    let sample_sql = format!("SELECT {key} AS v FROM {t} WHERE {cond} ORDER BY 1 LIMIT {SAMPLE}");
    let measured = in_savepoint(conn, |c| {
        let n = crate::with_conn!(c, |c| diesel::sql_query(&count_sql).get_result::<Count>(c))?.n;
        let sample = if n > 0 && blocked_why.is_some() {
            crate::with_conn!(c, |c| diesel::sql_query(&sample_sql).load::<Value>(c))?
                .into_iter()
                .map(|v| v.v)
                .collect()
        } else {
            Vec::new()
        };
        Ok((n, sample))
    });
    let (rows, sample) = match measured {
        Ok(found) => found,
        Err(e) => {
            return Ok(Class::BlockedByData {
                rows: 0,
                sample: Vec::new(),
                why: format!(
                    "its rows could not be checked ({})",
                    crate::db::one_line(&e.to_string())
                ),
            })
        }
    };
    Ok(match (rows, blocked_why) {
        (0, _) => Class::Safe,
        (rows, None) => Class::DestroysData { rows },
        (rows, Some(why)) => Class::BlockedByData { rows, sample, why },
    })
}

/// How a row is named: its primary key (`id=u1`), or its physical address where the table
/// has none.
fn row_key(conn: &Conn, model: &TableModel) -> String {
    if model.primary_key.is_empty() {
        return match conn {
            Conn::Postgres(_) => "'ctid=' || ctid::text".into(),
            Conn::Sqlite(_) => "'rowid=' || CAST(rowid AS TEXT)".into(),
        };
    }
    model
        .primary_key
        .iter()
        .map(|c| {
            format!(
                "{} || CAST({} AS TEXT)",
                quote_literal(&format!("{c}=")),
                q(c)
            )
        })
        .collect::<Vec<_>>()
        .join(" || ',' || ")
}

fn in_savepoint<T>(
    conn: &mut Conn,
    work: impl FnOnce(&mut Conn) -> diesel::QueryResult<T>,
) -> diesel::QueryResult<T> {
    conn.batch_execute("SAVEPOINT orch_probe")?;
    match work(conn) {
        Ok(v) => {
            conn.batch_execute("RELEASE SAVEPOINT orch_probe")?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.batch_execute("ROLLBACK TO SAVEPOINT orch_probe");
            let _ = conn.batch_execute("RELEASE SAVEPOINT orch_probe");
            Err(e)
        }
    }
}
