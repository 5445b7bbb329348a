//! PostgreSQL: what outside the repair's reach depends on a column it changes or drops, or
//! a table it drops. `ALTER COLUMN … TYPE` and `DROP` without `CASCADE` fail on such an
//! object (a view, a policy, a foreign key from a table the store does not know), and with
//! `CASCADE` they would destroy it: the step is blocked before anything runs, each object
//! named, and the team decides. What goes with the table itself (its indexes, its own
//! constraints and rules, its policies when the table is dropped) is not named; foreign
//! keys between the store's own tables are the planner's to handle.

use diesel::sql_types::Text;
use diesel::{QueryableByName, RunQueryDsl};

use crate::db::{quote_ident, quote_literal};

#[derive(QueryableByName)]
struct Named {
    #[diesel(sql_type = Text)]
    v: String,
}

/// The objects depending on `table` (or on its `column`) that block a change of it;
/// `store_tables` are the tables of the store's schema the planner knows.
pub(super) fn blocking(
    pg: &mut diesel::PgConnection,
    table: &str,
    column: Option<&str>,
    store_tables: &[String],
) -> diesel::QueryResult<Vec<String>> {
    let rel = quote_literal(&quote_ident(table));
    let column_filter = match column {
        Some(c) => format!(
            "AND d.refobjsubid = (SELECT attnum FROM pg_catalog.pg_attribute \
             WHERE attrelid = {rel}::regclass AND attname = {})",
            quote_literal(c)
        ),
        None => String::new(),
    };
    // A table's own policies go with it when it is dropped, not when a column changes.
    let own_policies = if column.is_some() {
        "true"
    } else {
        "p.polrelid <> d.refobjid"
    };
    let known = if store_tables.is_empty() {
        "NULL".to_string()
    } else {
        store_tables
            .iter()
            .map(|t| quote_literal(t))
            .collect::<Vec<_>>()
            .join(", ")
    };
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
           AND d.refobjid = {rel}::regclass {column_filter} \
           AND d.deptype = 'n' \
           AND ((rw.oid IS NOT NULL AND rw.ev_class <> d.refobjid) \
             OR (p.oid IS NOT NULL AND {own_policies}) \
             OR (con.contype = 'f' AND con.conrelid <> d.refobjid \
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
