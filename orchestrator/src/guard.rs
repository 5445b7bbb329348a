//! The safety guard of destructive commands: stores that hold rows need `--force`, and
//! protected stores (profile `protected = true`, or a host that is neither loopback nor a
//! socket) need `--confirm <database name>`, even when empty.

use serde::Serialize;
use shared::store::Store;
use shared::{catalog, Conn, DatabaseUrl, DbError};

use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};

/// What a store holds right now.
#[derive(Debug, Clone, Serialize)]
pub struct Contents {
    pub store: &'static str,
    pub database: String,
    pub protected: bool,
    /// Rows per table, every table of the schema (bookkeeping aside).
    pub rows: Vec<(String, i64)>,
}

impl Contents {
    pub fn total(&self) -> i64 {
        self.rows.iter().map(|(_, n)| n).sum()
    }

    fn non_empty(&self) -> String {
        self.rows
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| format!("{t}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn inspect(
    ctx: &Context,
    store: &'static Store,
    url: &DatabaseUrl,
    conn: &mut Conn,
) -> Result<Contents, DbError> {
    let query_error = |e: diesel::result::Error| DbError::Query {
        store: store.name.into(),
        url: url.redacted().into(),
        action: "counting rows".into(),
        reason: e.to_string(),
    };
    let tables = catalog::tables(conn).map_err(query_error)?;
    let rows = catalog::row_counts(conn, &tables).map_err(query_error)?;
    Ok(Contents {
        store: store.name,
        database: url.database_name(),
        protected: ctx.settings.protected || crate::identity::remote(ctx, store),
        rows,
    })
}

/// What every store of `stores` holds; a SQLite file that does not exist yet is empty.
pub fn inspect_all(ctx: &Context, stores: &[&'static Store]) -> CliResult<Vec<Contents>> {
    let mut all = Vec::with_capacity(stores.len());
    for store in stores {
        let url = ctx.url(store)?;
        if url.sqlite_path().is_some_and(|p| !p.exists()) {
            all.push(Contents {
                store: store.name,
                database: url.database_name(),
                protected: ctx.settings.protected,
                rows: Vec::new(),
            });
            continue;
        }
        let mut conn = ctx.session(store)?;
        all.push(inspect(ctx, store, url, &mut conn)?);
    }
    Ok(all)
}

/// Refuses an empty `--confirm` (exit 2) before a run touches anything, locks included.
pub fn check_confirm_names(confirms: &[String]) -> CliResult {
    match confirms.iter().find(|c| c.trim().is_empty()) {
        Some(empty) => Err(CliError::usage(format!(
            "--confirm needs a database name, got {empty:?}; e.g. --confirm auth (the protected store's database name)"
        ))),
        None => Ok(()),
    }
}

/// Refuses (exit 3) unless every store may be wiped; `verb` names the command.
pub fn check(contents: &[Contents], force: bool, confirms: &[String], verb: &str) -> CliResult {
    check_confirm_names(confirms)?;
    let unconfirmed: Vec<&Contents> = contents
        .iter()
        .filter(|c| c.protected && !confirms.iter().any(|n| n == &c.database))
        .collect();
    if !unconfirmed.is_empty() {
        let names: Vec<String> = unconfirmed
            .iter()
            .map(|c| format!("{} ({})", c.store, c.database))
            .collect();
        let flags: Vec<String> = unconfirmed
            .iter()
            .map(|c| format!("--confirm {}", c.database))
            .collect();
        return Err(CliError::new(
            Exit::Refused,
            anyhow::anyhow!(
                "refusing to {verb} protected store(s) {}; nothing was changed. Add {} to confirm",
                names.join(", "),
                flags.join(" ")
            ),
        ));
    }
    let holding: Vec<String> = contents
        .iter()
        .filter(|c| c.total() > 0)
        .map(|c| format!("{} holds rows ({})", c.store, c.non_empty()))
        .collect();
    if !holding.is_empty() && !force {
        return Err(CliError::new(
            Exit::Refused,
            anyhow::anyhow!(
                "refusing to {verb}: {}; nothing was changed. Add --force to back them up and replace them",
                holding.join("; ")
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(store: &'static str, protected: bool, rows: &[(&str, i64)]) -> Contents {
        Contents {
            store,
            database: format!("{store}_db"),
            protected,
            rows: rows.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
        }
    }

    #[test]
    fn rows_need_force_and_are_named() {
        let c = [
            contents("auth", false, &[("users", 3), ("teams", 0)]),
            contents("app", false, &[]),
        ];
        let err = check(&c, false, &[], "reset").expect_err("must refuse");
        assert_eq!(err.exit, Exit::Refused);
        let msg = err.to_string();
        assert!(msg.contains("users: 3") && !msg.contains("teams"), "{msg}");
        assert!(check(&c, true, &[], "reset").is_ok());
    }

    #[test]
    fn protected_stores_need_their_name_even_when_empty() {
        let c = [contents("auth", true, &[]), contents("app", false, &[])];
        let err = check(&c, true, &[], "reset").expect_err("must refuse");
        assert_eq!(err.exit, Exit::Refused);
        assert!(err.to_string().contains("--confirm auth_db"), "{err}");
        assert!(check(&c, true, &["wrong".into()], "reset").is_err());
        assert!(check(&c, false, &["auth_db".into()], "reset").is_ok());
        let err = check(&c, true, &[" ".into()], "reset").expect_err("empty confirm");
        assert_eq!(err.exit, Exit::Usage);
    }
}
