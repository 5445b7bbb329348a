//! `orchestrator schema`: the picture of the split, drawn from the stores' own
//! descriptions, and the one in the README is the one the command draws.

use orch_tests::{json_of, orchestrator_in};

fn drawn(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = orchestrator_in(dir.path())
        .args(args)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(0), "{args:?}");
    String::from_utf8(output.stdout).expect("utf8")
}

#[test]
fn the_diagram_holds_every_table_key_and_reference_and_touches_no_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mermaid = drawn(&["schema", "--mermaid"]);
    assert!(mermaid.starts_with("erDiagram\n"), "{mermaid}");
    for store in orchestrator::stores::STORES {
        for table in store.tables {
            assert!(
                mermaid.contains(&format!("    {}_{table} {{", store.name)),
                "{}.{table} missing:\n{mermaid}",
                store.name
            );
        }
        for fk in store.foreign_keys {
            let line = format!("    {s}_{} }}o--", fk.table, s = store.name);
            let action = format!("\"{} ON DELETE {}\"", fk.column, fk.on_delete.as_sql());
            assert!(
                mermaid
                    .lines()
                    .any(|l| l.starts_with(&line) && l.ends_with(&action)),
                "{}.{}.{} {action} missing:\n{mermaid}",
                store.name,
                fk.table,
                fk.column
            );
        }
        for r in store.references {
            let line = format!("    {}_{} }}o..", store.name, r.table);
            assert!(
                mermaid.lines().any(|l| l.starts_with(&line)
                    && l.contains(&format!("{}_{}", r.target_store, r.target_table))),
                "reference {}.{} missing:\n{mermaid}",
                r.table,
                r.column
            );
        }
    }
    let (code, report) = json_of(orchestrator_in(dir.path()), &["schema"]);
    assert_eq!(code, 0, "{report}");
    let references: usize = orchestrator::stores::STORES
        .iter()
        .map(|s| s.references.len())
        .sum();
    assert_eq!(
        report["references"].as_array().map(Vec::len),
        Some(references)
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        0,
        "schema reads no database and creates nothing"
    );
}

#[test]
fn the_readme_shows_the_diagram_the_command_draws() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README");
    let start = readme
        .find("```mermaid\n")
        .expect("a mermaid block in the README")
        + 11;
    let end = start + readme[start..].find("```").expect("its end");
    assert_eq!(
        readme[start..end].trim_end(),
        drawn(&["schema", "--mermaid"]).trim_end(),
        "the README's diagram is stale: paste `orchestrator schema --mermaid` into it"
    );
}
