//! Everything a destructive step would destroy in a store, read from the catalogs before
//! it runs: every object in the store's schema whatever its name (tables with their true
//! row counts, sequences with their value, views, materialized views, functions, types,
//! extensions, triggers), large objects, and on PostgreSQL every object outside the
//! schema that `DROP SCHEMA … CASCADE` would drop or alter with it. The catalog is read
//! in one query per store, the rows counted in one more.
//!
//! Counts are true counts: on PostgreSQL they are taken with row security off, so a
//! policy can never hide rows from the guard; a table whose policies the role cannot
//! bypass is reported as unreadable instead, and the guard refuses it.

mod postgres;
mod sqlite;

use serde::Serialize;

use crate::db::Conn;
use crate::store::{is_bookkeeping, Store};

/// One table's row count, as both backends' count queries return it.
#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// What a store's schema holds, and what depends on it from outside.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Inventory {
    /// The schema (PostgreSQL) or `main` (SQLite).
    pub schema: String,
    pub objects: Vec<Object>,
    /// Objects outside the schema that dropping it would drop or alter (PostgreSQL).
    pub outside: Vec<Dependent>,
    /// Large objects in the database (PostgreSQL): not dropped with the schema, but the
    /// rows that point at them are.
    pub large_objects: i64,
}

/// One object of the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Object {
    /// `table`, `partitioned table`, `view`, `materialized view`, `sequence`,
    /// `foreign table`, `function`, `type`, `extension`, `trigger`, `index`.
    pub kind: String,
    pub name: String,
    /// The table a trigger or index is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    /// Rows of a table or materialized view (true counts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<i64>,
    /// A sequence's last value, when it has been used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    /// The role cannot read it whole (row-level security it cannot bypass, or no
    /// privilege on a sequence): its contents are unknown.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unreadable: bool,
    /// Made by the store's migrations, or bookkeeping of diesel's or ours.
    pub ours: bool,
}

/// An object outside the schema that depends on something in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependent {
    /// PostgreSQL's own description: `view billing.v`, `column customer_email of table
    /// billing.invoices`, `publication of table users in publication cdc`.
    pub object: String,
    pub depends_on: String,
    /// Dropped whole (a view, a table); otherwise altered (a column or constraint
    /// dropped, a publication emptied).
    pub dropped: bool,
}

impl Object {
    fn holds_rows(&self) -> bool {
        matches!(self.kind.as_str(), "table" | "materialized view") && !is_bookkeeping(&self.name)
    }

    /// What of it is data a reset destroys, in words, or `None`.
    fn data(&self) -> Option<String> {
        match (self.kind.as_str(), self.rows, self.value) {
            (_, Some(n), _) if n > 0 && self.holds_rows() => {
                Some(format!("{} {} ({n} rows)", self.kind, self.name))
            }
            ("sequence", _, Some(v)) => Some(format!("sequence {} (at {v})", self.name)),
            _ => None,
        }
    }
}

impl Inventory {
    /// Reads the inventory of the connection's schema for `store`.
    pub fn read(conn: &mut Conn, store: &Store) -> diesel::QueryResult<Inventory> {
        let mut inventory = match conn {
            Conn::Postgres(_) => postgres::read(conn)?,
            Conn::Sqlite(_) => sqlite::read(conn)?,
        };
        for object in &mut inventory.objects {
            object.ours = match object.kind.as_str() {
                "table" => {
                    store.tables.contains(&object.name.as_str()) || is_bookkeeping(&object.name)
                }
                "index" => object
                    .on
                    .as_deref()
                    .is_some_and(|t| store.tables.contains(&t) || is_bookkeeping(t)),
                _ => false,
            };
        }
        Ok(inventory)
    }

    /// Rows per table (bookkeeping aside), as the manifest and reports count them.
    pub fn table_rows(&self) -> Vec<(String, i64)> {
        self.objects
            .iter()
            .filter(|o| o.kind == "table" && !is_bookkeeping(&o.name))
            .map(|o| (o.name.clone(), o.rows.unwrap_or(0)))
            .collect()
    }

    pub fn total_rows(&self) -> i64 {
        self.table_rows().iter().map(|(_, n)| n).sum()
    }

    /// Everything that is data a reset destroys (or, for large objects, orphans), named.
    pub fn holding(&self) -> Vec<String> {
        let mut held: Vec<String> = self.objects.iter().filter_map(Object::data).collect();
        if self.large_objects > 0 {
            held.push(format!("{} large object(s)", self.large_objects));
        }
        held
    }

    /// Objects whose contents the role cannot read whole: the guard cannot count them.
    pub fn unreadable(&self) -> Vec<String> {
        self.objects
            .iter()
            .filter(|o| o.unreadable)
            .map(|o| format!("{} {}", o.kind, o.name))
            .collect()
    }

    /// Objects of the schema the store's migrations do not make, named.
    pub fn foreign_objects(&self) -> Vec<String> {
        self.objects
            .iter()
            .filter(|o| !o.ours)
            .map(|o| match &o.on {
                Some(on) => format!("{} {} on {on}", o.kind, o.name),
                None => format!("{} {}", o.kind, o.name),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: &str, name: &str, rows: Option<i64>, value: Option<i64>) -> Object {
        Object {
            kind: kind.into(),
            name: name.into(),
            on: None,
            rows,
            value,
            unreadable: false,
            ours: false,
        }
    }

    #[test]
    fn data_is_rows_used_sequences_and_large_objects_never_bookkeeping() {
        let inv = Inventory {
            schema: "public".into(),
            objects: vec![
                object("table", "__payouts_archive", Some(10_000), None),
                object("table", "__diesel_schema_migrations", Some(4), None),
                object("table", "users", Some(0), None),
                object("sequence", "invoice_seq", None, Some(50_000)),
                object("sequence", "fresh_seq", None, None),
                object("materialized view", "mv", Some(3), None),
                object("view", "v", None, None),
            ],
            outside: Vec::new(),
            large_objects: 2,
        };
        assert_eq!(
            inv.holding(),
            [
                "table __payouts_archive (10000 rows)",
                "sequence invoice_seq (at 50000)",
                "materialized view mv (3 rows)",
                "2 large object(s)"
            ]
        );
        assert_eq!(inv.total_rows(), 10_000);
        assert_eq!(
            inv.table_rows().len(),
            2,
            "bookkeeping is not a table of the store"
        );
    }
}
