//! The safety guard of destructive commands: stores that hold rows need `--force`, and
//! protected stores (profile `protected = true`, or a host that is neither loopback nor a
//! socket) need `--confirm <database name>`, even when empty.

use serde::Serialize;
use shared::inventory::Inventory;
use shared::store::Store;
use shared::{Conn, DatabaseUrl, DbError};

use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};

/// What the user allowed a destructive command to do (`--force`, `--confirm NAME`...,
/// `--drop-dependents`).
#[derive(Debug, Clone, Default)]
pub struct Permission {
    /// Replace stores that hold data.
    pub force: bool,
    /// The database names confirmed for protected stores.
    pub confirm: Vec<String>,
    /// Also drop objects in other schemas that depend on the store's schema.
    pub drop_dependents: bool,
}

/// What a store holds right now: its inventory, and whether it is protected.
#[derive(Debug, Clone, Serialize)]
pub struct Contents {
    pub store: &'static str,
    pub database: String,
    pub protected: bool,
    pub inventory: Inventory,
}

impl Contents {
    pub fn total(&self) -> i64 {
        self.inventory.total_rows()
    }

    /// Rows per table, every table of the schema (bookkeeping aside).
    pub fn rows(&self) -> Vec<(String, i64)> {
        self.inventory.table_rows()
    }

    /// Whether anything in it is data: rows, a used sequence, large objects.
    pub fn holds_data(&self) -> bool {
        !self.inventory.holding().is_empty()
    }
}

pub fn inspect(
    ctx: &Context,
    store: &'static Store,
    url: &DatabaseUrl,
    conn: &mut Conn,
) -> Result<Contents, DbError> {
    let inventory = Inventory::read(conn, store).map_err(|e| DbError::Query {
        store: store.name.into(),
        url: url.redacted().into(),
        action: "reading what the store holds".into(),
        reason: e.to_string(),
    })?;
    Ok(Contents {
        store: store.name,
        database: url.database_name(),
        protected: is_protected(ctx, store),
        inventory,
    })
}

/// Whether destroying the store's contents needs `--confirm`.
pub fn is_protected(ctx: &Context, store: &'static Store) -> bool {
    ctx.settings.protected || crate::identity::remote(ctx, store)
}

/// Each store's identity and protection, without reading what it holds: a destructive run
/// reads that under its write fence (see `rebuild`), where it is checked again by
/// [`check`], so it is read once, in the state that is then dropped.
pub fn protection(ctx: &Context, stores: &[&'static Store]) -> CliResult<Vec<Contents>> {
    stores
        .iter()
        .map(|store| {
            let url = ctx.url(store)?;
            Ok(Contents {
                store: store.name,
                database: url.database_name(),
                protected: is_protected(ctx, store),
                inventory: Inventory::default(),
            })
        })
        .collect()
}

/// What every store of `stores` holds, all stores at once (each inventory is a catalog
/// query of some milliseconds); a SQLite file that does not exist yet is empty.
pub fn inspect_all(ctx: &Context, stores: &[&'static Store]) -> CliResult<Vec<Contents>> {
    crate::context::all_at_once(stores, "inventory", |store| {
        let url = ctx.url(store)?;
        if url.is_missing_sqlite_file() {
            return Ok(Contents {
                store: store.name,
                database: url.database_name(),
                protected: ctx.settings.protected,
                inventory: Inventory::default(),
            });
        }
        let mut conn = ctx.session(store)?;
        Ok(inspect(ctx, store, url, &mut conn)?)
    })
}

/// On a terminal, the question a person is asked before their data is destroyed: when
/// the stores hold data and nothing but `--force` is missing, the inventory of what would
/// go is shown on stderr and `verb … [y/N]` asked, default no. Yes is `--force` for this
/// run; no ends it (exit 3, nothing changed). Without a terminal on stdin and stderr, with
/// `--format json`, or with `--force`/`--yes` given, nothing is asked and `permission` is
/// returned as it is: the guard then refuses as it always has.
pub fn ask_on_terminal(
    ctx: &Context,
    stores: &[&'static Store],
    permission: Permission,
    verb: &str,
) -> CliResult<Permission> {
    use std::io::IsTerminal;
    if permission.force
        || ctx.json()
        || !std::io::stdin().is_terminal()
        || !std::io::stderr().is_terminal()
    {
        return Ok(permission);
    }
    let contents = inspect_all(ctx, stores)?;
    let forced = Permission {
        force: true,
        ..permission.clone()
    };
    let holding: Vec<&Contents> = contents.iter().filter(|c| c.holds_data()).collect();
    if holding.is_empty() || check(&contents, &forced, verb).is_err() {
        return Ok(permission);
    }
    eprintln!("{verb} would destroy:");
    for c in &holding {
        eprintln!(
            "  {} ({}): {}",
            c.store,
            c.database,
            c.inventory.holding().join(", ")
        );
    }
    let names: Vec<&str> = stores.iter().map(|s| s.name).collect();
    let answer = dialoguer::Confirm::new()
        .with_prompt(format!("{verb} {}? (backed up first)", names.join(" and ")))
        .default(false)
        .interact();
    match answer {
        Ok(true) => Ok(forced),
        Ok(false) => Err(CliError::new(
            Exit::Refused,
            anyhow::anyhow!("not confirmed at the prompt; nothing was changed"),
        )),
        // No usable terminal after all: as without one.
        Err(_) => Ok(permission),
    }
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

/// Refuses when a protected target's database name is not among `confirm`. Each target
/// is `(what, database, protected)`; the refusal names every unconfirmed one once, and the
/// flags that would confirm them. Serves every destructive command, and `backups prune`
/// (whose targets are the stores a set holds).
pub fn check_protected<'a>(
    targets: impl IntoIterator<Item = (&'a str, &'a str, bool)>,
    confirm: &[String],
    refusing_to: &str,
    nothing_was: &str,
) -> CliResult {
    let mut unconfirmed: Vec<(&str, &str)> = Vec::new();
    for (what, database, protected) in targets {
        if protected
            && !confirm.iter().any(|n| n == database)
            && !unconfirmed.iter().any(|(_, d)| *d == database)
        {
            unconfirmed.push((what, database));
        }
    }
    if unconfirmed.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = unconfirmed
        .iter()
        .map(|(what, database)| format!("{what} ({database})"))
        .collect();
    let flags: Vec<String> = unconfirmed
        .iter()
        .map(|(_, database)| format!("--confirm {database}"))
        .collect();
    Err(CliError::new(
        Exit::Refused,
        anyhow::anyhow!(
            "refusing to {refusing_to} {}; nothing was {nothing_was}. Add {} to confirm",
            names.join(", "),
            flags.join(" ")
        ),
    ))
}

/// Refuses (exit 3) unless every store may be wiped; `verb` names the command.
/// In order: protected stores need `--confirm`; contents the role cannot count are never
/// guessed at; objects in other schemas that depend on the store need
/// `--drop-dependents`; data needs `--force`.
pub fn check(contents: &[Contents], permission: &Permission, verb: &str) -> CliResult {
    check_confirm_names(&permission.confirm)?;
    let refuse = |why: String| {
        Err(CliError::new(
            Exit::Refused,
            anyhow::anyhow!("refusing to {verb}: {why}; nothing was changed"),
        ))
    };
    check_protected(
        contents
            .iter()
            .map(|c| (c.store, c.database.as_str(), c.protected)),
        &permission.confirm,
        &format!("{verb} protected store(s)"),
        "changed",
    )?;
    let unreadable: Vec<String> = contents
        .iter()
        .filter(|c| !c.inventory.unreadable().is_empty())
        .map(|c| format!("{}: {}", c.store, c.inventory.unreadable().join(", ")))
        .collect();
    if !unreadable.is_empty() {
        return refuse(format!(
            "the connecting role cannot read all of {} (row-level security it cannot bypass, \
             or no privilege), so what would be destroyed cannot be counted or backed up. \
             Connect as a role that bypasses row security (the tables' owner without FORCE \
             ROW LEVEL SECURITY, a role with BYPASSRLS, or a superuser)",
            unreadable.join("; ")
        ));
    }
    let outside: Vec<String> = contents
        .iter()
        .flat_map(|c| {
            c.inventory.outside.iter().map(move |d| {
                format!(
                    "{}: {} ({}, depends on {})",
                    c.store,
                    d.object,
                    if d.dropped { "dropped" } else { "altered" },
                    d.depends_on
                )
            })
        })
        .collect();
    if !outside.is_empty() && !permission.drop_dependents {
        return refuse(format!(
            "objects outside the store's schema depend on it and would be dropped or altered: {}. \
             Remove the dependency, or add --drop-dependents to back them up and drop them too",
            outside.join("; ")
        ));
    }
    let holding: Vec<String> = contents
        .iter()
        .filter(|c| c.holds_data())
        .map(|c| format!("{} holds {}", c.store, c.inventory.holding().join(", ")))
        .collect();
    if !holding.is_empty() && !permission.force {
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
    use shared::inventory::{Dependent, Object};

    fn contents(store: &'static str, protected: bool, rows: &[(&str, i64)]) -> Contents {
        let objects = rows
            .iter()
            .map(|(t, n)| Object {
                kind: "table".into(),
                name: t.to_string(),
                on: None,
                rows: Some(*n),
                value: None,
                unreadable: false,
                ours: true,
            })
            .collect();
        Contents {
            store,
            database: format!("{store}_db"),
            protected,
            inventory: Inventory {
                schema: "public".into(),
                objects,
                ..Inventory::default()
            },
        }
    }

    fn allow(force: bool, confirm: &[&str], drop_dependents: bool) -> Permission {
        Permission {
            force,
            confirm: confirm.iter().map(|s| s.to_string()).collect(),
            drop_dependents,
        }
    }

    #[test]
    fn rows_need_force_and_are_named() {
        let c = [
            contents("auth", false, &[("users", 3), ("teams", 0)]),
            contents("app", false, &[]),
        ];
        let err = check(&c, &allow(false, &[], false), "reset").expect_err("must refuse");
        assert_eq!(err.exit, Exit::Refused);
        let msg = err.to_string();
        assert!(
            msg.contains("users (3 rows)") && !msg.contains("teams"),
            "{msg}"
        );
        assert!(check(&c, &allow(true, &[], false), "reset").is_ok());
    }

    #[test]
    fn protected_stores_need_their_name_even_when_empty() {
        let c = [contents("auth", true, &[]), contents("app", false, &[])];
        let err = check(&c, &allow(true, &[], false), "reset").expect_err("must refuse");
        assert_eq!(err.exit, Exit::Refused);
        assert!(err.to_string().contains("--confirm auth_db"), "{err}");
        assert!(check(&c, &allow(true, &["wrong"], false), "reset").is_err());
        assert!(check(&c, &allow(false, &["auth_db"], false), "reset").is_ok());
        let err = check(&c, &allow(true, &[" "], false), "reset").expect_err("empty confirm");
        assert_eq!(err.exit, Exit::Usage);
    }

    #[test]
    fn uncountable_tables_are_refused_even_with_force() {
        let mut c = contents("app", false, &[("datasets", 0)]);
        c.inventory.objects[0].unreadable = true;
        let err = check(&[c], &allow(true, &[], true), "reset").expect_err("must refuse");
        assert_eq!(err.exit, Exit::Refused);
        assert!(err.to_string().contains("table datasets"), "{err}");
    }

    #[test]
    fn dependents_outside_the_schema_need_their_own_flag() {
        let mut c = contents("auth", false, &[]);
        c.inventory.outside.push(Dependent {
            object: "view billing.v".into(),
            depends_on: "table users".into(),
            dropped: true,
        });
        let c = [c];
        let err = check(&c, &allow(true, &[], false), "reset").expect_err("must refuse");
        assert!(err.to_string().contains("view billing.v (dropped"), "{err}");
        assert!(check(&c, &allow(false, &[], true), "reset").is_ok());
    }
}
