//! `orchestrator schema`: the picture of the split. Every store's tables and columns as
//! its migrations make them (the recorded model each store crate ships), the foreign keys
//! inside each store with their ON DELETE actions, and the references across stores that
//! no database can enforce (verify checks them). As text, as JSON, or as a Mermaid
//! `erDiagram`, which GitHub renders in a README. It reads no database.

use clap::Args;
use serde::Serialize;
use shared::schema::SchemaModel;
use shared::store::{CrossReference, Store};

use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};
use crate::output;

/// Draw the stores: tables, foreign keys with their ON DELETE actions, and the references
/// across stores.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  orchestrator schema\n  orchestrator schema --mermaid > docs/schema.md   # ```mermaid … ``` renders on GitHub\n  orchestrator --format json schema | jq '.references'"
)]
pub struct SchemaArgs {
    #[command(flatten)]
    pub store: crate::commands::args::StoreArg,

    /// A Mermaid erDiagram instead of text
    #[arg(long)]
    pub mermaid: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    ok: bool,
    stores: Vec<StoreSchema>,
    references: Vec<Reference>,
}

#[derive(Debug, Serialize)]
struct StoreSchema {
    store: &'static str,
    model: SchemaModel,
}

#[derive(Debug, Serialize)]
struct Reference {
    from_store: &'static str,
    #[serde(flatten)]
    reference: CrossReference,
}

pub fn run(ctx: &Context, args: &SchemaArgs) -> CliResult {
    let stores = ctx.selected(args.store.store.as_deref())?;
    let mut report = Report {
        ok: true,
        stores: Vec::new(),
        references: Vec::new(),
    };
    for store in &stores {
        report.stores.push(StoreSchema {
            store: store.name,
            model: model_of(store)?,
        });
        for r in store.references {
            report.references.push(Reference {
                from_store: store.name,
                reference: *r,
            });
        }
    }
    if ctx.json() {
        return output::print_json(&report).map_err(|e| CliError::new(Exit::Usage, e));
    }
    let text = if args.mermaid {
        mermaid(&report)
    } else {
        text(&report)
    };
    crate::say!("{}", text.trim_end());
    Ok(())
}

fn model_of(store: &Store) -> CliResult<SchemaModel> {
    SchemaModel::from_json(store.migrations.postgres_model).map_err(|e| {
        CliError::new(
            Exit::Usage,
            anyhow::anyhow!(
                "the {} store's recorded model does not read ({e}); `orchestrator lint --write` records it",
                store.name
            ),
        )
    })
}

/// An entity name Mermaid accepts, unique across stores.
fn entity(store: &str, table: &str) -> String {
    format!("{store}_{table}")
}

/// A column type as one Mermaid word (`timestamp with time zone` → `timestamp_with_time_zone`).
fn word(data_type: &str) -> String {
    data_type
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn mermaid(report: &Report) -> String {
    let mut out = String::from("erDiagram\n");
    for s in &report.stores {
        for (name, table) in &s.model.tables {
            out.push_str(&format!("    {} {{\n", entity(s.store, name)));
            for (column, c) in &table.columns {
                let pk = table.primary_key.contains(column);
                let fk = table.foreign_keys.keys().any(|f| f.column == *column)
                    || report.references.iter().any(|r| {
                        r.from_store == s.store
                            && r.reference.table == name
                            && r.reference.column == column
                    });
                let keys = match (pk, fk) {
                    (true, true) => " PK, FK",
                    (true, false) => " PK",
                    (false, true) => " FK",
                    (false, false) => "",
                };
                out.push_str(&format!("        {} {column}{keys}\n", word(&c.data_type)));
            }
            out.push_str("    }\n");
        }
        for (name, table) in &s.model.tables {
            for fk in table.foreign_keys.keys() {
                let nullable = table.columns.get(&fk.column).is_some_and(|c| c.nullable);
                out.push_str(&format!(
                    "    {} }}o--{} {} : \"{} ON DELETE {}\"\n",
                    entity(s.store, name),
                    if nullable { "o|" } else { "||" },
                    entity(s.store, &fk.ref_table),
                    fk.column,
                    fk.on_delete.as_sql()
                ));
            }
        }
    }
    for r in &report.references {
        let x = &r.reference;
        out.push_str(&format!(
            "    {} }}o..{} {} : \"{} across stores, checked by verify\"\n",
            entity(r.from_store, x.table),
            if x.nullable { "o|" } else { "||" },
            entity(x.target_store, x.target_table),
            x.column
        ));
    }
    out
}

fn text(report: &Report) -> String {
    let mut out = String::new();
    for s in &report.stores {
        out.push_str(&format!("{}:\n", s.store));
        for (name, table) in &s.model.tables {
            let columns: Vec<&str> = table.columns.keys().map(String::as_str).collect();
            out.push_str(&format!("  {name} ({})\n", columns.join(", ")));
            for fk in table.foreign_keys.keys() {
                out.push_str(&format!(
                    "    {}.{} → {}.{} ON DELETE {}\n",
                    name,
                    fk.column,
                    fk.ref_table,
                    fk.ref_column,
                    fk.on_delete.as_sql()
                ));
            }
        }
    }
    if !report.references.is_empty() {
        out.push_str("across stores (no database enforces these; verify checks them):\n");
        for r in &report.references {
            let x = &r.reference;
            out.push_str(&format!(
                "  {}.{}.{} → {}.{}.{}{}\n",
                r.from_store,
                x.table,
                x.column,
                x.target_store,
                x.target_table,
                x.target_column,
                if x.nullable { " (nullable)" } else { "" }
            ));
        }
    }
    out
}
