//! The schema model's rows from SQLite's schema table and pragmas.

use diesel::sql_types::Text;
use diesel::{QueryableByName, RunQueryDsl, SqliteConnection};

use super::expr::{check_clauses, index_predicate};
use super::{
    foreign_key_rows, index_rows, CatalogRows, ColumnRow, ForeignKeyQuery, IndexQuery, NamedRow,
};
use crate::db::Conn;

#[derive(QueryableByName)]
struct TableSql {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    def: String,
}

const COLUMNS: &str = "SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type, \
       (p.\"notnull\" = 1 OR (p.pk > 0 AND lower(p.type) = 'integer')) AS not_null, \
       p.dflt_value AS dflt, p.pk AS pk \
     FROM sqlite_schema m, pragma_table_info(m.name) p \
     WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY 1, 2";

/// Every index, one row per key column in key order, with its collation unless it is
/// SQLite's default (`BINARY`), its order, and a partial index's statement.
const INDEXES: &str = "SELECT m.name AS table_name, il.name AS index_name, il.origin AS origin, \
       il.\"unique\" = 1 AS is_unique, COALESCE(ix.name, '<expression>') AS column_name, \
       CASE WHEN upper(ix.coll) = 'BINARY' THEN NULL ELSE ix.coll END AS collation, \
       ix.\"desc\" = 1 AS descending, \
       CASE WHEN il.partial = 1 THEN (SELECT s.sql FROM sqlite_schema s \
         WHERE s.type = 'index' AND s.name = il.name) END AS predicate \
     FROM sqlite_schema m, pragma_index_list(m.name) il, pragma_index_xinfo(il.name) ix \
     WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND ix.key = 1 \
     ORDER BY 1, 2, ix.seqno";

/// SQLite keeps no catalog of CHECK constraints: they are read from each table's SQL.
const TABLE_SQL: &str = "SELECT name AS table_name, sql AS def FROM sqlite_schema \
     WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND sql IS NOT NULL ORDER BY 1";

/// One row per column pair of every foreign key; SQLite numbers them per table.
const FOREIGN_KEYS: &str = "SELECT m.name AS table_name, 'foreign key ' || (f.id + 1) AS name, \
       f.\"from\" AS column_name, \
       f.\"table\" AS ref_table, COALESCE(f.\"to\", '') AS ref_column, f.on_delete AS on_delete \
     FROM sqlite_schema m, pragma_foreign_key_list(m.name) f \
     WHERE m.type = 'table' ORDER BY 1, 2, f.seq";

pub(super) fn read(conn: &mut SqliteConnection) -> diesel::QueryResult<CatalogRows> {
    let tables = diesel::sql_query(TABLE_SQL).load::<TableSql>(conn)?;
    let columns = diesel::sql_query(COLUMNS).load::<ColumnRow>(conn)?;
    let indexes = diesel::sql_query(INDEXES).load::<IndexQuery>(conn)?;
    let fks = diesel::sql_query(FOREIGN_KEYS).load::<ForeignKeyQuery>(conn)?;
    let mut checks = Vec::new();
    for t in &tables {
        for (i, check) in check_clauses(&t.def).into_iter().enumerate() {
            checks.push(NamedRow {
                table: t.table_name.clone(),
                // SQLite names only the checks written as `CONSTRAINT name CHECK`.
                name: format!("check {}", i + 1),
                definition: check,
            });
        }
    }
    Ok(CatalogRows {
        tables: tables.into_iter().map(|t| t.table_name).collect(),
        columns,
        // SQLite keeps a partial index's statement, not its WHERE.
        indexes: index_rows(indexes, index_predicate),
        checks,
        foreign_keys: foreign_key_rows(fks)?,
    })
}

/// The statements that create a SQLite schema (tables first, then indexes, triggers and
/// views, each in creation order), bookkeeping and internal objects aside: a squash's
/// baseline.
pub fn sqlite_creation_sql(conn: &mut Conn) -> diesel::QueryResult<Vec<(String, String)>> {
    const SQL: &str = "SELECT name AS table_name, sql AS def FROM sqlite_schema \
         WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
           AND tbl_name NOT LIKE '\\_\\_%' ESCAPE '\\' \
         ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, rowid";
    let rows: Vec<TableSql> = crate::with_conn!(conn, |c| diesel::sql_query(SQL).load(c))?;
    Ok(rows.into_iter().map(|r| (r.table_name, r.def)).collect())
}
