//! The schema model's rows from PostgreSQL's catalogs (the connection's current schema).

use diesel::sql_types::Text;
use diesel::{PgConnection, QueryableByName, RunQueryDsl};

use super::{
    foreign_key_rows, index_rows, CatalogRows, ColumnRow, ForeignKeyQuery, IndexQuery, NamedRow,
};

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

const TABLES: &str = "SELECT c.relname::text AS name FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY 1";

const COLUMNS: &str = "SELECT c.relname::text AS table_name, a.attname::text AS column_name, \
       format_type(a.atttypid, a.atttypmod) AS data_type, a.attnotnull AS not_null, \
       pg_get_expr(d.adbin, d.adrelid) AS dflt, \
       COALESCE(array_position(pk.conkey, a.attnum), 0)::int AS pk \
     FROM pg_catalog.pg_attribute a \
     JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
     LEFT JOIN pg_catalog.pg_constraint pk ON pk.conrelid = c.oid AND pk.contype = 'p' \
     WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0 \
       AND NOT a.attisdropped ORDER BY 1, 2";

/// Every index, one row per key column in key order (expressions spelled out), whether a
/// constraint made it, the column's collation when the index names another than the
/// column's own (`COLLATE "C"`), descending order, and a partial index's predicate.
/// `indkey`, `indcollation` and `indoption` are vectors subscripted from 0.
const INDEXES: &str = "SELECT t.relname::text AS table_name, ic.relname::text AS index_name, \
       CASE WHEN con.contype = 'p' THEN 'pk' WHEN con.contype IN ('u', 'x') THEN 'u' ELSE 'c' END AS origin, \
       i.indisunique AS is_unique, \
       pg_get_indexdef(i.indexrelid, k.n::int, true) AS column_name, \
       CASE WHEN i.indcollation[k.n - 1] IN (0, 100) \
              OR i.indcollation[k.n - 1] = COALESCE(a.attcollation, 0) THEN NULL \
            ELSE coll.collname::text END AS collation, \
       (i.indoption[k.n - 1]::int & 1) = 1 AS descending, \
       pg_get_expr(i.indpred, i.indrelid, true) AS predicate \
     FROM pg_catalog.pg_index i \
     JOIN pg_catalog.pg_class t ON t.oid = i.indrelid \
     JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
     JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace \
     LEFT JOIN pg_catalog.pg_constraint con ON con.conindid = i.indexrelid \
       AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x') \
     CROSS JOIN LATERAL generate_series(1, i.indnkeyatts) AS k(n) \
     LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[k.n - 1] \
     LEFT JOIN pg_catalog.pg_collation coll ON coll.oid = i.indcollation[k.n - 1] \
     WHERE n.nspname = current_schema() AND t.relkind IN ('r', 'p') ORDER BY 1, 2, k.n";

const CHECKS: &str = "SELECT cl.relname::text AS table_name, con.conname::text AS name, \
       pg_get_constraintdef(con.oid, true) AS def \
     FROM pg_catalog.pg_constraint con \
     JOIN pg_catalog.pg_class cl ON cl.oid = con.conrelid \
     JOIN pg_catalog.pg_namespace n ON n.oid = cl.relnamespace \
     WHERE con.contype = 'c' AND n.nspname = current_schema() ORDER BY 1, 2";

/// One row per column pair of every foreign key, with the constraint's name.
const FOREIGN_KEYS: &str =
    crate::catalog::pg_foreign_keys!("con.conname::text AS name, ", "1, 2, 3");

pub(super) fn read(conn: &mut PgConnection) -> diesel::QueryResult<CatalogRows> {
    let tables = diesel::sql_query(TABLES).load::<Name>(conn)?;
    let columns = diesel::sql_query(COLUMNS).load::<ColumnRow>(conn)?;
    let indexes = diesel::sql_query(INDEXES).load::<IndexQuery>(conn)?;
    let checks = diesel::sql_query(CHECKS).load::<NamedRow>(conn)?;
    let fks = diesel::sql_query(FOREIGN_KEYS).load::<ForeignKeyQuery>(conn)?;
    Ok(CatalogRows {
        tables: tables.into_iter().map(|t| t.name).collect(),
        columns,
        indexes: index_rows(indexes, |p| Some(p.to_string())),
        checks,
        foreign_keys: foreign_key_rows(fks)?,
    })
}
