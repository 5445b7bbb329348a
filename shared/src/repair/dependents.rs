//! PostgreSQL: what outside the repair's reach depends on something a step changes or
//! drops: a column it alters or drops, a table it drops, or the index under a key or a
//! unique it drops. `ALTER COLUMN … TYPE` and `DROP` without `CASCADE` fail on such an
//! object, and with `CASCADE` they would destroy it: the step is blocked before anything
//! runs, each object named, and the team decides. Blocking: views and materialized views
//! (their rewrite rules), rules and policies on a changed column, functions whose
//! SQL-standard body names it, and, for a drop, foreign keys from tables the store does
//! not know (another schema's, or a team's own). What goes with the table itself (its
//! indexes, its own constraints, its policies when it is dropped) is not named, foreign
//! keys between the store's own tables are the planner's to handle, and a type change
//! rebuilds the foreign keys that reference the column by itself.

use diesel::sql_types::Text;
use diesel::{QueryableByName, RunQueryDsl};

use super::Depended;
use crate::db::{quote_ident, quote_literal};

#[derive(QueryableByName)]
struct Named {
    #[diesel(sql_type = Text)]
    v: String,
}

/// The objects depending on `target` of `table` that block the step; `store_tables` are
/// the tables of the store's schema the planner knows.
pub(super) fn blocking(
    pg: &mut diesel::PgConnection,
    table: &str,
    target: &Depended,
    store_tables: &[String],
) -> diesel::QueryResult<Vec<String>> {
    let rel = format!("{}::regclass", quote_literal(&quote_ident(table)));
    let index_of = |contype_or_name: &str| {
        format!("(SELECT conindid FROM pg_catalog.pg_constraint WHERE conrelid = {rel} AND {contype_or_name})")
    };
    // What is depended on (a pg_class row, and a column of it or none), and whether the
    // step drops it (foreign keys from elsewhere block only a drop).
    let (object, column, drops) = match target {
        Depended::Table => (rel.clone(), None, true),
        Depended::Column { name, drops } => (rel.clone(), Some(name.as_str()), *drops),
        Depended::Index(name) => (
            format!("{}::regclass", quote_literal(&quote_ident(name))),
            None,
            true,
        ),
        Depended::Constraint(name) => (
            index_of(&format!("conname = {}", quote_literal(name))),
            None,
            true,
        ),
        Depended::PrimaryKey => (index_of("contype = 'p'"), None, true),
    };
    let column_filter = match column {
        Some(c) => format!(
            "AND d.refobjsubid = (SELECT attnum FROM pg_catalog.pg_attribute \
             WHERE attrelid = {rel} AND attname = {})",
            quote_literal(c)
        ),
        None => String::new(),
    };
    // A table's own rules and policies go with it when it is dropped; on a column they
    // stand in the way as anyone's do.
    let others_only = if column.is_some() { "true" } else { "false" };
    let known = store_tables
        .iter()
        .map(|t| quote_literal(t))
        .chain(std::iter::once("NULL".to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT DISTINCT CASE d.classid \
           WHEN 'pg_catalog.pg_rewrite'::regclass \
             THEN pg_catalog.pg_describe_object('pg_catalog.pg_class'::regclass, rw.ev_class, 0) \
           ELSE pg_catalog.pg_describe_object(d.classid, d.objid, 0) END AS v \
         FROM pg_catalog.pg_depend d \
         LEFT JOIN pg_catalog.pg_rewrite rw \
           ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND rw.oid = d.objid \
         LEFT JOIN pg_catalog.pg_policy p \
           ON d.classid = 'pg_catalog.pg_policy'::regclass AND p.oid = d.objid \
         LEFT JOIN pg_catalog.pg_constraint con \
           ON d.classid = 'pg_catalog.pg_constraint'::regclass AND con.oid = d.objid \
         LEFT JOIN pg_catalog.pg_class fk_rel ON fk_rel.oid = con.conrelid \
         WHERE d.refclassid = 'pg_catalog.pg_class'::regclass \
           AND d.refobjid = {object} {column_filter} \
           AND d.deptype = 'n' \
           AND ((rw.oid IS NOT NULL AND ({others_only} OR rw.ev_class <> {rel})) \
             OR (p.oid IS NOT NULL AND ({others_only} OR p.polrelid <> {rel})) \
             OR d.classid = 'pg_catalog.pg_proc'::regclass \
             OR ({drops} AND con.contype = 'f' AND con.conrelid <> {rel} \
                 AND NOT (fk_rel.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace \
                                                 WHERE nspname = current_schema()) \
                          AND fk_rel.relname::text IN ({known})))) \
         ORDER BY 1"
    );
    Ok(diesel::sql_query(sql)
        .load::<Named>(pg)?
        .into_iter()
        .map(|n| n.v)
        .collect())
}
