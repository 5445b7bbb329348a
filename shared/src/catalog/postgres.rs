//! The catalog queries on PostgreSQL (`pg_catalog`), limited to the connection's current
//! schema: the store's own.

/// The oid of the connection's current schema: the store's. Compared with a relation's
/// namespace instead of joining `pg_namespace`, and names looked up one by one in
/// scalar subqueries: each join a catalog query spares saves the planner the most on a new
/// session (the foreign keys below planned in 7–12 ms with five joins, 2–4 ms this way).
macro_rules! pg_schema_oid {
    () => {
        "(SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = current_schema())"
    };
}
pub(crate) use pg_schema_oid;

pub(super) const TABLES: &str = concat!(
    "SELECT c.relname::text AS name FROM pg_catalog.pg_class c \
     WHERE c.relnamespace = ",
    pg_schema_oid!(),
    " AND c.relkind IN ('r', 'p') ORDER BY 1"
);

/// [`TABLES`] limited to some names (`{names}`, quoted literals separated by commas):
/// found through the index on `(relname, relnamespace)` rather than a scan of every
/// relation of the database, which after many resets' worth of dead catalog rows costs
/// milliseconds each time.
pub(super) const TABLES_NAMED: &str = concat!(
    "SELECT c.relname::text AS name FROM pg_catalog.pg_class c \
     WHERE c.relname IN ({names}) AND c.relnamespace = ",
    pg_schema_oid!(),
    " AND c.relkind IN ('r', 'p') ORDER BY 1"
);

/// One row per column pair of every foreign key of the schema: the table, then `$name`
/// (more columns, or none), the column, the referenced table and column, and the ON
/// DELETE action, ordered by `$order`.
macro_rules! pg_foreign_keys {
    ($name:literal, $order:literal) => {
        concat!(
            "SELECT cl.relname::text AS table_name, ",
            $name,
            "(SELECT attname FROM pg_catalog.pg_attribute \
                WHERE attrelid = con.conrelid AND attnum = k.attnum)::text AS column_name, \
              (SELECT relname FROM pg_catalog.pg_class WHERE oid = con.confrelid)::text AS ref_table, \
              (SELECT attname FROM pg_catalog.pg_attribute \
                WHERE attrelid = con.confrelid AND attnum = k.refnum)::text AS ref_column, \
              con.confdeltype::text AS on_delete \
            FROM pg_catalog.pg_constraint con \
            JOIN pg_catalog.pg_class cl ON cl.oid = con.conrelid \
            CROSS JOIN LATERAL unnest(con.conkey, con.confkey) AS k(attnum, refnum) \
            WHERE con.contype = 'f' AND cl.relnamespace = ",
            $crate::catalog::pg_schema_oid!(),
            " ORDER BY ",
            $order
        )
    };
}
pub(crate) use pg_foreign_keys;

pub(super) const FOREIGN_KEYS: &str = pg_foreign_keys!("", "1, 2");

pub(super) const COLUMNS: &str = "SELECT c.relname::text AS table_name, a.attname::text AS column_name, \
       format_type(a.atttypid, a.atttypmod) AS data_type, a.attnotnull AS not_null \
     FROM pg_catalog.pg_attribute a \
     JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped \
     ORDER BY 1, 2";
