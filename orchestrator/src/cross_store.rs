//! A table of one store found in another (a `users` table in app: the original drift).
//! Dropping it there loses nothing only when every one of its rows is in the owning store,
//! by primary key; the rows that exist only in the copy are what a repair must name.

use diesel::sql_types::Text;
use diesel::{QueryableByName, RunQueryDsl};
use shared::db::quote_ident;
use shared::repair::Class;
use shared::{Conn, Store};

use crate::context::Context;

#[derive(QueryableByName)]
struct Key {
    #[diesel(sql_type = Text)]
    v: String,
}

/// Every key of `table` on `conn`, as text, in byte order (what the merge needs).
fn keys(conn: &mut Conn, table: &str, key: &[String]) -> diesel::QueryResult<Vec<String>> {
    let expr = key
        .iter()
        .map(|c| format!("CAST({} AS TEXT)", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(" || ',' || ");
    let sql = format!("SELECT {expr} AS v FROM {}", quote_ident(table));
    let mut values: Vec<String> = shared::with_conn!(conn, |c| diesel::sql_query(&sql)
        .load::<Key>(c))?
    .into_iter()
    .map(|k| k.v)
    .collect();
    values.sort_unstable();
    Ok(values)
}

/// The owner's keys of `table`, none when it has no such table.
fn owner_keys(
    ctx: &Context,
    owner: &'static Store,
    table: &str,
    key: &[String],
) -> Result<Vec<String>, String> {
    let mut owner_conn = ctx.session(owner).map_err(|e| e.to_string())?;
    let owned = shared::catalog::tables(&mut owner_conn)
        .map_err(|e| e.to_string())?
        .iter()
        .any(|t| t == table);
    if !owned {
        return Ok(Vec::new());
    }
    keys(&mut owner_conn, table, key).map_err(|e| e.to_string())
}

/// The class of dropping the copy of `owner`'s `table` that `conn` holds: safe when every
/// row is in the owner (by the copy's primary key `key`); otherwise blocked, the rows that
/// exist only in the copy named, or (`force`) destroying them.
pub fn class_of_copy(
    ctx: &Context,
    conn: &mut Conn,
    owner: &'static Store,
    table: &str,
    key: &[String],
    force: bool,
) -> Result<Class, String> {
    if key.is_empty() {
        return Err(format!(
            "{table} has no primary key to compare its rows with {}.{table} by",
            owner.name
        ));
    }
    // Both sides are read at once, each on its own connection.
    let (here, there) = std::thread::scope(|scope| {
        let there = scope.spawn(|| owner_keys(ctx, owner, table, key));
        let here = keys(conn, table, key).map_err(|e| e.to_string());
        let there = there
            .join()
            .unwrap_or_else(|_| Err("the owning store's reader panicked".into()));
        (here, there)
    });
    // An empty copy loses nothing, whatever the owner could say.
    let here = here?;
    if here.is_empty() {
        return Ok(Class::Safe);
    }
    let there = there?;
    let (only_here, sample) = shared::references::merge_orphans(
        here.iter(),
        there.iter(),
        shared::references::SAMPLE_SIZE,
    );
    let rows = only_here as i64;
    Ok(match (rows, force) {
        (0, _) => Class::Safe,
        (rows, true) => Class::DestroysData { rows },
        (rows, false) => Class::BlockedByData {
            rows,
            sample: sample
                .into_iter()
                .map(|v| format!("{}={v}", key.join(",")))
                .collect(),
            why: format!(
                "row(s) exist only here, not in {}.{table} (--force backs them up and drops them)",
                owner.name
            ),
        },
    })
}
