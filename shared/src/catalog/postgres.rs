//! The catalog queries on PostgreSQL (`pg_catalog`), limited to the connection's current
//! schema: the store's own.

pub(super) const TABLES: &str = "SELECT c.relname::text AS name FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY 1";

pub(super) const FOREIGN_KEYS: &str = "SELECT cl.relname::text AS table_name, a.attname::text AS column_name, \
       rc.relname::text AS ref_table, ra.attname::text AS ref_column, con.confdeltype::text AS on_delete \
     FROM pg_catalog.pg_constraint con \
     JOIN pg_catalog.pg_class cl ON cl.oid = con.conrelid \
     JOIN pg_catalog.pg_namespace n ON n.oid = cl.relnamespace \
     JOIN pg_catalog.pg_class rc ON rc.oid = con.confrelid \
     CROSS JOIN LATERAL unnest(con.conkey, con.confkey) AS k(attnum, refnum) \
     JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum \
     JOIN pg_catalog.pg_attribute ra ON ra.attrelid = con.confrelid AND ra.attnum = k.refnum \
     WHERE con.contype = 'f' AND n.nspname = current_schema() ORDER BY 1, 2";

pub(super) const COLUMNS: &str = "SELECT c.relname::text AS table_name, a.attname::text AS column_name, \
       format_type(a.atttypid, a.atttypmod) AS data_type, a.attnotnull AS not_null \
     FROM pg_catalog.pg_attribute a \
     JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped \
     ORDER BY 1, 2";
