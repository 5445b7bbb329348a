use super::*;
use crate::url::DatabaseUrl;

fn sqlite(sql: &str) -> SchemaModel {
    let url = DatabaseUrl::sqlite_in_memory();
    let mut conn = Conn::establish("test", &url).expect("open");
    conn.batch_execute(sql).expect("schema");
    introspect(&mut conn).expect("introspect")
}

fn kinds(expected: &SchemaModel, found: &SchemaModel) -> Vec<(DifferenceKind, String, String)> {
    compare(expected, found)
        .into_iter()
        .map(|d| (d.kind, d.table, d.object))
        .collect()
}

const BASE: &str = "CREATE TABLE p(id TEXT PRIMARY KEY NOT NULL, email TEXT NOT NULL UNIQUE, \
    n BIGINT NOT NULL DEFAULT 0 CHECK (n >= 0), status TEXT DEFAULT 'a');
    CREATE TABLE c(id TEXT PRIMARY KEY NOT NULL, p_id TEXT REFERENCES p(id) ON DELETE CASCADE);
    CREATE INDEX c_p_idx ON c (p_id);
    CREATE TABLE __orchestrator_resets(x TEXT);";

#[test]
fn a_model_reads_every_kind_of_object() {
    let m = sqlite(BASE);
    assert_eq!(m.tables.keys().collect::<Vec<_>>(), ["c", "p"]);
    let p = &m.tables["p"];
    assert_eq!(p.primary_key, ["id"]);
    assert!(p.uniques.contains_key(&vec!["email".to_string()]));
    assert_eq!(p.checks.keys().collect::<Vec<_>>(), ["n>=0"]);
    assert_eq!(p.columns["n"].default.as_deref(), Some("0"));
    assert_eq!(p.columns["status"].default.as_deref(), Some("'a'"));
    let c = &m.tables["c"];
    assert_eq!(c.indexes.values().collect::<Vec<_>>(), [&["c_p_idx"]]);
    assert_eq!(c.foreign_keys.len(), 1);
    assert!(compare(&m, &m).is_empty());
}

#[test]
fn each_change_is_reported_and_named() {
    let expected = sqlite(BASE);
    let found = sqlite(
        "CREATE TABLE p(id TEXT PRIMARY KEY NOT NULL, email TEXT UNIQUE, \
         n BIGINT NOT NULL DEFAULT 0 CHECK (n >= 0), status TEXT DEFAULT 'a', x TEXT);
         CREATE TABLE c(id TEXT PRIMARY KEY NOT NULL, p_id TEXT REFERENCES p(id) ON DELETE SET NULL);
         CREATE INDEX c_p_idx ON c (p_id); CREATE INDEX c_id_p ON c (id, p_id);",
    );
    let kinds = kinds(&expected, &found);
    assert!(
        kinds.contains(&(DifferenceKind::UnexpectedColumn, "p".into(), "x".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(
            DifferenceKind::ColumnNullability,
            "p".into(),
            "email".into()
        )),
        "{kinds:?}"
    );
    assert!(
        kinds
            .iter()
            .any(|k| k.0 == DifferenceKind::ForeignKeyAction && k.1 == "c"),
        "{kinds:?}"
    );
    assert!(
        kinds
            .iter()
            .any(|k| k.0 == DifferenceKind::UnexpectedIndex && k.2.contains("c_id_p")),
        "{kinds:?}"
    );
    assert_eq!(kinds.len(), 4, "{kinds:?}");
}

#[test]
fn an_index_is_its_whole_definition_and_copies_count() {
    let expected = sqlite(
        "CREATE TABLE t(id TEXT PRIMARY KEY NOT NULL, a TEXT, b TEXT);
         CREATE INDEX t_a ON t (a COLLATE NOCASE);
         CREATE INDEX t_b ON t (b DESC) WHERE b IS NOT NULL;",
    );
    let ix = expected.tables["t"].indexes.keys().collect::<Vec<_>>();
    assert_eq!(ix[0].columns[0].collation.as_deref(), Some("NOCASE"));
    assert!(ix[1].columns[0].descending);
    assert_eq!(ix[1].predicate.as_deref(), Some("b is not null"));
    // The same names, rebuilt without the collation, the order or the predicate.
    for (changed, name) in [
        ("CREATE INDEX t_a ON t (a); CREATE INDEX t_b ON t (b DESC) WHERE b IS NOT NULL;", "t_a"),
        ("CREATE INDEX t_a ON t (a COLLATE NOCASE); CREATE INDEX t_b ON t (b) WHERE b IS NOT NULL;", "t_b"),
        ("CREATE INDEX t_a ON t (a COLLATE NOCASE); CREATE INDEX t_b ON t (b DESC);", "t_b"),
    ] {
        let found = sqlite(&format!(
            "CREATE TABLE t(id TEXT PRIMARY KEY NOT NULL, a TEXT, b TEXT); {changed}"
        ));
        let k = kinds(&expected, &found);
        assert!(
            k.iter().any(|d| d.0 == DifferenceKind::MissingIndex && d.2.contains(name)),
            "{changed}: {k:?}"
        );
        assert!(k.iter().any(|d| d.0 == DifferenceKind::UnexpectedIndex), "{changed}: {k:?}");
    }
    // A second copy of an index, a check and a foreign key.
    let base = "CREATE TABLE p(id TEXT PRIMARY KEY NOT NULL);
        CREATE TABLE c(id TEXT PRIMARY KEY NOT NULL, n INT CHECK (n > 0),
          p_id TEXT REFERENCES p(id) ON DELETE CASCADE);
        CREATE INDEX c_p ON c (p_id);";
    let expected = sqlite(base);
    let found = sqlite(
        "CREATE TABLE p(id TEXT PRIMARY KEY NOT NULL);
         CREATE TABLE c(id TEXT PRIMARY KEY NOT NULL, n INT CHECK (n > 0) CHECK (n > 0),
           p_id TEXT REFERENCES p(id) ON DELETE CASCADE,
           FOREIGN KEY (p_id) REFERENCES p(id) ON DELETE CASCADE);
         CREATE INDEX c_p ON c (p_id); CREATE INDEX c_p_again ON c (p_id);",
    );
    let k = kinds(&expected, &found);
    for kind in [
        DifferenceKind::UnexpectedIndex,
        DifferenceKind::UnexpectedCheck,
        DifferenceKind::UnexpectedForeignKey,
    ] {
        assert!(k.iter().any(|d| d.0 == kind), "{kind}: {k:?}");
    }
    let dup = compare(&expected, &found)
        .into_iter()
        .find(|d| d.kind == DifferenceKind::UnexpectedIndex)
        .expect("duplicate index");
    assert!(dup.object.contains("c_p_again"), "{dup:?}");
    assert!(dup.advice.contains("duplicates `c_p`"), "{dup:?}");
    assert_eq!(k.len(), 3, "{k:?}");
}

#[test]
fn a_model_survives_its_json() {
    let m = sqlite(
        "CREATE TABLE p(id TEXT PRIMARY KEY NOT NULL, e TEXT UNIQUE, n INT CHECK (n > 0));
         CREATE TABLE c(id TEXT PRIMARY KEY NOT NULL, p_id TEXT REFERENCES p(id) ON DELETE SET NULL);
         CREATE INDEX c_p ON c (p_id COLLATE NOCASE DESC) WHERE p_id IS NOT NULL;",
    );
    assert_eq!(SchemaModel::from_json(&m.to_json()).expect("json"), m);
}

#[test]
fn the_logical_view_ignores_what_only_one_backend_spells() {
    let plain = sqlite(
        "CREATE TABLE t(id TEXT PRIMARY KEY NOT NULL, a TEXT NOT NULL DEFAULT 'x' CHECK (a <> ''));
         CREATE INDEX t_a ON t (a);",
    );
    let dressed = sqlite(
        "CREATE TABLE t(id TEXT PRIMARY KEY NOT NULL, a TEXT NOT NULL DEFAULT 'y' CHECK (length(a) > 0));
         CREATE INDEX t_a ON t (a); CREATE INDEX t_a_nocase ON t (a COLLATE NOCASE);
         CREATE INDEX t_id_nocase ON t (id COLLATE NOCASE);",
    );
    let (a, b) = (logical_view(&plain), logical_view(&dressed));
    assert_eq!(compare(&a, &b), Vec::new());
    let narrower = sqlite(
        "CREATE TABLE t(id TEXT PRIMARY KEY NOT NULL, a TEXT);
         CREATE INDEX t_a ON t (a) WHERE a IS NOT NULL;",
    );
    let k = kinds(&a, &logical_view(&narrower));
    assert!(
        k.contains(&(DifferenceKind::ColumnNullability, "t".into(), "a".into())),
        "{k:?}"
    );
    assert!(
        k.iter().any(|d| d.0 == DifferenceKind::MissingIndex),
        "{k:?}"
    );
    assert!(
        k.iter().any(|d| d.0 == DifferenceKind::UnexpectedIndex),
        "{k:?}"
    );
    assert_eq!(k.len(), 3, "{k:?}");
}

#[test]
fn expressions_normalise_across_spellings() {
    assert_eq!(normalise_expr("CHECK ((credits >= 0))"), "credits>=0");
    assert_eq!(normalise_expr("'queued'::text"), "'queued'");
    assert_eq!(normalise_expr("(a) + (b)"), "(a)+(b)");
    assert_eq!(normalise_expr("checked_at IS NULL"), "checked_at is null");
    assert_eq!(
        normalise_expr("(now() AT TIME ZONE 'utc'::text)"),
        "now() at time zone 'utc'"
    );
    assert_eq!(normalise_expr("count (x) IN ( 1, 2 )"), "count(x) in(1,2)");
    assert_eq!(
        normalise_expr("team_id  IS\n NOT NULL"),
        "team_id is not null"
    );
    assert_eq!(
        check_clauses("CREATE TABLE t(a INT CHECK (a IN ('x)', 'y')), b INT, CHECK(b>0))"),
        ["(a IN ('x)', 'y'))", "(b>0)"]
    );
    assert_eq!(
        expr::index_predicate("CREATE INDEX i ON t (a, lower(\"where\")) WHERE a IS NOT NULL;")
            .as_deref(),
        Some("a IS NOT NULL")
    );
    assert_eq!(expr::index_predicate("CREATE INDEX nowhere ON t (a)"), None);
}
