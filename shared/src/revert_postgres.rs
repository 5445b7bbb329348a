//! PostgreSQL's part of a revert: counting past row-level security, and the table locks
//! that make the in-transaction recount exact. SQLite needs none: its write transaction (`BEGIN IMMEDIATE`) already keeps
//! every other writer out.

use crate::db::{quote_ident, Conn};

/// Takes the tables a revert may drop in ACCESS EXCLUSIVE mode (what `DROP TABLE` would
/// take anyway), so that no row can be written to them between the recount and the drop.
pub fn lock_tables(conn: &mut Conn, tables: &[String]) -> diesel::QueryResult<()> {
    if tables.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = tables.iter().map(|t| quote_ident(t)).collect();
    conn.batch_execute(&format!(
        "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
        list.join(", ")
    ))
}

/// Makes the rest of the caller's transaction count every row, whatever row-level
/// security would show this role: with `row_security` off, a query that a policy would
/// filter fails instead of answering short (a role that does not bypass the policies
/// cannot count those rows at all, and the revert stops rather than guess).
pub fn count_every_row(conn: &mut Conn) -> diesel::QueryResult<()> {
    conn.batch_execute("SET LOCAL row_security = off")
}

/// The error of a count that row-level security stopped, in words that say what to do.
pub fn explain(e: &dyn std::fmt::Display) -> String {
    let e = e.to_string();
    if e.contains("row-level security") {
        format!(
            "{e}: this role cannot count every row (row-level security hides some), so what \
             the revert would destroy is unknown; nothing was changed. Run it as the tables' \
             owner with BYPASSRLS, or as a superuser"
        )
    } else {
        e
    }
}
