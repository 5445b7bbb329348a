//! The SQLite inventory: `sqlite_schema` lists every table, view, trigger and index of
//! the file (SQLite's own `sqlite_*` tables aside); rows are counted in one query.

use diesel::sql_types::Text;
use diesel::{QueryableByName, RunQueryDsl};

use super::{Count, Inventory, Object};
use crate::db::{quote_ident, quote_literal, Conn};

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    tbl_name: String,
}

/// Indexes SQLite makes itself (`sqlite_autoindex_*`, for UNIQUE and PRIMARY KEY) have
/// no SQL and go with their table.
const OBJECTS: &str = "SELECT type AS kind, name, tbl_name FROM main.sqlite_schema \
     WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND (type <> 'index' OR sql IS NOT NULL) \
     ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'view' THEN 1 WHEN 'index' THEN 2 ELSE 3 END, name";

pub(super) fn read(conn: &mut Conn) -> diesel::QueryResult<Inventory> {
    let Conn::Sqlite(c) = conn else {
        unreachable!("SQLite inventory on a PostgreSQL connection")
    };
    let rows: Vec<Row> = diesel::sql_query(OBJECTS).load(c)?;
    let mut objects: Vec<Object> = rows
        .into_iter()
        .map(|r| Object {
            on: matches!(r.kind.as_str(), "index" | "trigger").then_some(r.tbl_name),
            kind: r.kind,
            name: r.name,
            rows: None,
            value: None,
            unreadable: false,
            ours: false,
        })
        .collect();
    let selects: Vec<String> = objects
        .iter()
        .filter(|o| o.kind == "table")
        .map(|o| {
            format!(
                "SELECT {} AS name, count(*) AS n FROM main.{}",
                quote_literal(&o.name),
                quote_ident(&o.name)
            )
        })
        .collect();
    if !selects.is_empty() {
        let counts: Vec<Count> = diesel::sql_query(selects.join(" UNION ALL ")).load(c)?;
        for count in counts {
            if let Some(o) = objects
                .iter_mut()
                .find(|o| o.kind == "table" && o.name == count.name)
            {
                o.rows = Some(count.n);
            }
        }
    }
    Ok(Inventory {
        schema: "main".into(),
        objects,
        outside: Vec::new(),
        large_objects: 0,
    })
}
