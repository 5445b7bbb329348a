//! The catalog queries on SQLite (`sqlite_schema` and the `pragma_*` table functions).

pub(super) const TABLES: &str = "SELECT name FROM sqlite_schema \
     WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY 1";

pub(super) const TABLES_NAMED: &str =
    "SELECT name FROM sqlite_schema WHERE type = 'table' AND name IN ({names}) ORDER BY 1";

pub(super) const FOREIGN_KEYS: &str = "SELECT m.name AS table_name, f.\"from\" AS column_name, \
       f.\"table\" AS ref_table, COALESCE(f.\"to\", '') AS ref_column, f.on_delete AS on_delete \
     FROM sqlite_schema m, pragma_foreign_key_list(m.name) f \
     WHERE m.type = 'table' ORDER BY 1, 2";

pub(super) const COLUMNS: &str =
    "SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type, \
       (p.\"notnull\" = 1 OR (p.pk > 0 AND lower(p.type) = 'integer')) AS not_null \
     FROM sqlite_schema m, pragma_table_info(m.name) p \
     WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY 1, 2";
