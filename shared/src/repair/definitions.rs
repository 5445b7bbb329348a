//! The exact SQL of what the migrations make, read from a database they were just run on
//! (a scratch database): the model (`schema::SchemaModel`) is normalised for comparison
//! and cannot be spoken back as SQL (`double` is no PostgreSQL type, literals are lower
//! cased), so a repair writes each object as the migrations' database spells it.

use std::collections::BTreeMap;

use diesel::sql_types::{Bool, Nullable, Text};
use diesel::{QueryableByName, RunQueryDsl};

use crate::db::Conn;

/// A column as PostgreSQL spells it: `format_type`, the default's expression, NOT NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSql {
    pub sql_type: String,
    pub default: Option<String>,
    pub not_null: bool,
}

/// Everything a repair may need to create, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Definitions {
    /// SQLite: each table's `CREATE TABLE` as written. PostgreSQL: the columns, primary
    /// key, unique and check constraints (foreign keys and indexes come apart).
    pub create_table: BTreeMap<String, String>,
    /// PostgreSQL: `(table, column)` → how it is declared.
    pub columns: BTreeMap<(String, String), ColumnSql>,
    /// PostgreSQL: `(table, constraint name)` → `pg_get_constraintdef`.
    pub constraints: BTreeMap<(String, String), String>,
    /// Index name → its `CREATE INDEX` statement; with the index's table.
    pub indexes: BTreeMap<String, (String, String)>,
}

#[derive(QueryableByName)]
struct PgColumn {
    #[diesel(sql_type = Text)]
    t: String,
    #[diesel(sql_type = Text)]
    col: String,
    #[diesel(sql_type = Text)]
    ty: String,
    #[diesel(sql_type = Nullable<Text>)]
    def: Option<String>,
    #[diesel(sql_type = Bool)]
    nn: bool,
}

#[derive(QueryableByName)]
struct PgConstraint {
    #[diesel(sql_type = Text)]
    t: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    def: String,
}

#[derive(QueryableByName)]
struct Named {
    #[diesel(sql_type = Text)]
    t: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    def: String,
}

/// Reads the definitions of the connection's schema (PostgreSQL: the current schema).
pub fn read(conn: &mut Conn) -> diesel::QueryResult<Definitions> {
    match conn {
        Conn::Postgres(c) => read_postgres(c),
        Conn::Sqlite(c) => read_sqlite(c),
    }
}

fn read_postgres(c: &mut diesel::PgConnection) -> diesel::QueryResult<Definitions> {
    let columns: Vec<PgColumn> = diesel::sql_query(
        "SELECT c.relname::text AS t, a.attname::text AS col, \
                format_type(a.atttypid, a.atttypmod) AS ty, \
                pg_get_expr(d.adbin, d.adrelid) AS def, a.attnotnull AS nn \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') \
           AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY c.relname, a.attnum",
    )
    .load(c)?;
    // Constraints in a stable order: the primary key first, as CREATE TABLE lists it.
    let constraints: Vec<PgConstraint> = diesel::sql_query(
        "SELECT c.relname::text AS t, con.conname::text AS name, con.contype::text AS kind, \
                pg_get_constraintdef(con.oid) AS def \
         FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND con.contype IN ('p', 'u', 'c', 'f') \
         ORDER BY c.relname, con.contype <> 'p', con.conname",
    )
    .load(c)?;
    let indexes: Vec<Named> = diesel::sql_query(
        "SELECT t.relname::text AS t, i.relname::text AS name, pg_get_indexdef(i.oid) AS def \
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = current_schema() \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)",
    )
    .load(c)?;

    let mut defs = Definitions::default();
    let mut bodies: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for col in columns {
        let sql = ColumnSql {
            sql_type: col.ty,
            default: col.def,
            not_null: col.nn,
        };
        bodies.entry(col.t.clone()).or_default().push(format!(
            "{} {}",
            crate::db::quote_ident(&col.col),
            column_clause(&sql)
        ));
        defs.columns.insert((col.t, col.col), sql);
    }
    for con in constraints {
        if con.kind != "f" {
            bodies.entry(con.t.clone()).or_default().push(format!(
                "CONSTRAINT {} {}",
                crate::db::quote_ident(&con.name),
                con.def
            ));
        }
        defs.constraints.insert((con.t, con.name), con.def);
    }
    for (table, body) in bodies {
        let sql = format!(
            "CREATE TABLE {} (\n  {}\n)",
            crate::db::quote_ident(&table),
            body.join(",\n  ")
        );
        defs.create_table.insert(table, sql);
    }
    // pg_get_indexdef names the table with its schema; the repair runs in the store's
    // own schema (its search path), whichever the migrations' database used.
    let schema: Named = diesel::sql_query(
        "SELECT ''::text AS t, ''::text AS name, quote_ident(current_schema())::text AS def",
    )
    .get_result(c)?;
    for ix in indexes {
        let def = unqualified(&ix.def, &schema.def);
        defs.indexes.insert(ix.name, (ix.t, def));
    }
    Ok(defs)
}

/// `CREATE INDEX … ON [ONLY] schema.table …` with the table named without its schema
/// (`schema` as PostgreSQL quotes it).
fn unqualified(def: &str, schema: &str) -> String {
    for on in [" ON ONLY ", " ON "] {
        let qualified = format!("{on}{schema}.");
        if let Some(at) = def.find(&qualified) {
            return format!("{}{on}{}", &def[..at], &def[at + qualified.len()..]);
        }
    }
    def.to_string()
}

/// `text NOT NULL DEFAULT 'x'`: a column's declaration after its name.
pub fn column_clause(c: &ColumnSql) -> String {
    let mut s = c.sql_type.clone();
    if let Some(d) = &c.default {
        s.push_str(&format!(" DEFAULT {d}"));
    }
    if c.not_null {
        s.push_str(" NOT NULL");
    }
    s
}

fn read_sqlite(c: &mut diesel::SqliteConnection) -> diesel::QueryResult<Definitions> {
    let rows: Vec<Named> = diesel::sql_query(
        "SELECT tbl_name AS t, name, sql AS def FROM sqlite_schema \
         WHERE type IN ('table', 'index') AND sql IS NOT NULL \
           AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type DESC, rowid",
    )
    .load(c)?;
    let mut defs = Definitions::default();
    for row in rows {
        if row.t == row.name {
            defs.create_table.insert(row.t, row.def);
        } else {
            defs.indexes.insert(row.name, (row.t, row.def));
        }
    }
    Ok(defs)
}

#[cfg(test)]
mod unqualified_tests {
    use super::unqualified;

    #[test]
    fn an_index_definition_loses_its_schema_and_nothing_else() {
        assert_eq!(
            unqualified("CREATE INDEX a_idx ON public.a USING btree (id)", "public"),
            "CREATE INDEX a_idx ON a USING btree (id)"
        );
        assert_eq!(
            unqualified(
                "CREATE UNIQUE INDEX \"x y\" ON ONLY \"Tenant\".p USING btree (k)",
                "\"Tenant\""
            ),
            "CREATE UNIQUE INDEX \"x y\" ON ONLY p USING btree (k)"
        );
        assert_eq!(
            unqualified("CREATE INDEX a_idx ON other.a USING btree (id)", "public"),
            "CREATE INDEX a_idx ON other.a USING btree (id)"
        );
    }
}
