//! PostgreSQL's part of a revert: the table locks that make the in-transaction recount
//! exact. SQLite needs none: its write transaction (`BEGIN IMMEDIATE`) already keeps
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
