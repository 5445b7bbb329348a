//! `migrate --to VERSION` stops after a version, and `migrate --dry-run` prints the SQL it
//! would run and changes nothing, on both backends.

use orch_tests::{for_each_backend, json_of, orchestrator};
use shared::catalog;

#[test]
fn migrate_to_stops_after_the_version_and_dry_run_changes_nothing() {
    for_each_backend("e2e_migrate_to", |pair| {
        let shipped = shared::migrations::shipped(&auth_db::STORE, pair.backend).expect("shipped");
        let (second_version, second_name) = shipped[1].clone();
        // The folder name's date part, as people copy it from the folder list.
        let dated = second_name.split('_').next().expect("date").to_string();

        // Nothing exists yet: the dry run lists every migration and makes nothing.
        let (code, plan) = json_of(orchestrator(pair), &["migrate", "--dry-run"]);
        assert_eq!(code, 0, "{plan}");
        assert_eq!(plan["dry_run"], true);
        let auth = &plan["stores"][0];
        assert_eq!(auth["store"], "auth");
        assert_eq!(
            auth["migrations"].as_array().map(Vec::len),
            Some(shipped.len())
        );
        assert!(
            auth["migrations"][0]["sql"]
                .as_str()
                .is_some_and(|sql| sql.contains("CREATE TABLE users")),
            "{plan}"
        );
        let mut conn = pair.auth.connect();
        assert_eq!(
            catalog::all_tables(&mut conn).expect("tables"),
            Vec::<String>::new()
        );
        drop(conn);

        // --to with the dated part: exactly the first two.
        let (code, report) = json_of(
            orchestrator(pair),
            &["migrate", "--store", "auth", "--to", &dated],
        );
        assert_eq!(code, 0, "{report}");
        let applied: Vec<&str> = report["stores"][0]["applied"]
            .as_array()
            .expect("applied")
            .iter()
            .filter_map(|m| m["name"].as_str())
            .collect();
        assert_eq!(applied, [shipped[0].1.as_str(), second_name.as_str()]);
        let mut conn = pair.auth.connect();
        assert_eq!(
            catalog::applied_versions(&mut conn).expect("versions"),
            [shipped[0].0.clone(), second_version.clone()]
        );
        drop(conn);

        // The dry run now lists the rest, in order, with --to too.
        let (_, plan) = json_of(
            orchestrator(pair),
            &["migrate", "--dry-run", "--store", "auth"],
        );
        let rest: Vec<&str> = plan["stores"][0]["migrations"]
            .as_array()
            .expect("migrations")
            .iter()
            .filter_map(|m| m["name"].as_str())
            .collect();
        let expected: Vec<&str> = shipped[2..].iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(rest, expected);

        // A version the store does not ship: exit 2, nothing applied.
        let out = orchestrator(pair)
            .args(["migrate", "--store", "auth", "--to", "2099-01-01-000000"])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("has no migration"));
        let mut conn = pair.auth.connect();
        assert_eq!(
            catalog::applied_versions(&mut conn)
                .expect("versions")
                .len(),
            2
        );
    });
}
