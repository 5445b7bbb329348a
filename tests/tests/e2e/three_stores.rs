//! The engine knows no store but those it is given: on three stores (the product's two
//! and the tests' billing store, registered in `orchestrator-billing` by one line), it
//! migrates in dependency order, verifies the new store's reference into auth, weighs a
//! reset of auth against the rows that reference it from billing, resets all three, and
//! finishes a reset that died between two commits.

use orch_tests::{backends, billing_build_in, count, exec, json_of, orchestrator_billing, Trio};

/// Each store of the report, by name, in its order.
fn store_names(report: &serde_json::Value) -> Vec<String> {
    report["stores"]
        .as_array()
        .unwrap_or_else(|| panic!("no stores in {report}"))
        .iter()
        .map(|s| s["store"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A user through auth's own API, and two invoices for it (and `extra` for no one).
fn seed(trio: &Trio, extra: bool) -> String {
    let mut auth = trio.pair.auth.connect();
    let user = auth_db::users::sign_up(
        &mut auth,
        &auth_db::users::NewUser {
            email: "payer@example.com",
            name: Some("Payer"),
        },
        0,
    )
    .expect("sign up");
    let mut billing = trio.billing.connect();
    exec(
        &mut billing,
        &format!(
            "INSERT INTO invoices (id, user_id, amount_cents) VALUES ('i1', '{0}', 500), ('i2', '{0}', 700)",
            user.id
        ),
    );
    if extra {
        exec(
            &mut billing,
            "INSERT INTO invoices (id, user_id, amount_cents) VALUES ('i3', 'ghost', 900)",
        );
    }
    user.id
}

#[test]
fn the_engine_runs_on_a_third_store_given_by_one_registry_line() {
    for backend in backends() {
        let Some(trio) = Trio::new(backend, "three_stores") else {
            continue;
        };
        let config = orch_tests::configuration(&trio.billing);

        let (code, report) = json_of(orchestrator_billing(&trio), &["migrate"]);
        assert_eq!(code, 0, "{config}: {report}");
        assert_eq!(store_names(&report), ["auth", "app", "billing"], "{config}");
        let (code, status) = json_of(orchestrator_billing(&trio), &["status"]);
        assert_eq!(code, 0, "{config}: {status}");
        // Every spelling the registry derives names the same three stores: the per-store
        // flag, the generic `--url STORE=URL` and `<STORE>_DATABASE_URL`.
        let mut spelled = billing_build_in(trio.pair.path());
        spelled
            .arg("--auth-url")
            .arg(trio.pair.auth.url_string())
            .arg("--url")
            .arg(format!("app={}", trio.pair.app.url_string()))
            .env("BILLING_DATABASE_URL", trio.billing.url_string());
        let (code, spelled) = json_of(spelled, &["status"]);
        assert_eq!(code, 0, "{config}: {spelled}");
        assert_eq!(
            spelled, status,
            "{config}: the spellings reach other databases"
        );
        let billing = &status["stores"][2];
        assert_eq!(billing["store"], "billing", "{config}: {status}");
        assert_eq!(
            billing["pending"].as_array().map(Vec::len),
            Some(0),
            "{status}"
        );

        // verify follows billing's reference into auth: an invoice for no user is named.
        seed(&trio, true);
        let (code, verified) = json_of(orchestrator_billing(&trio), &["verify"]);
        assert_eq!(code, 1, "{config}: {verified}");
        let reference = verified["references"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["from"] == "billing.invoices.user_id"))
            .unwrap_or_else(|| panic!("{config}: no billing reference in {verified}"));
        assert_eq!(reference["to"], "auth.users.id", "{verified}");
        assert_eq!(reference["orphans"], 1, "{verified}");
        assert_eq!(reference["sample"][0], "ghost", "{verified}");
        exec(
            &mut trio.billing.connect(),
            "DELETE FROM invoices WHERE id = 'i3'",
        );
        let (code, verified) = json_of(orchestrator_billing(&trio), &["verify"]);
        assert_eq!(code, 0, "{config}: {verified}");

        // Resetting auth alone would leave billing's invoices pointing at no one: refused,
        // with billing's rows counted, and nothing changed.
        let (code, plan) = json_of(
            orchestrator_billing(&trio),
            &["reset", "--store", "auth", "--dry-run"],
        );
        assert_eq!(code, 3, "{config}: {plan}");
        let dangling = &plan["dangling"][0];
        assert_eq!(dangling["from"], "billing.invoices.user_id", "{plan}");
        assert_eq!(dangling["rows"], 2, "{plan}");
        let output = orchestrator_billing(&trio)
            .args(["reset", "--store", "auth"])
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(3), "{config}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("billing.invoices.user_id"), "{stderr}");
        assert_eq!(count(&mut trio.pair.auth.connect(), "users"), 1, "{config}");

        // A reset of all three that dies right after auth committed is finished by the
        // next writing command: every store empty, migrated and verified.
        for mode in ["off", "on"] {
            orchestrator_billing(&trio)
                .args(["reset", "--force", "--no-backup"])
                .assert()
                .success();
            assert_eq!(
                count(&mut trio.billing.connect(), "invoices"),
                0,
                "{config}"
            );
            seed(&trio, false);
            let output = orchestrator_billing(&trio)
                .env("ORCH_FAULT", "crash-after-commit:auth")
                .env("ORCH_TWO_PHASE", mode)
                .args(["reset", "--force", "--no-backup"])
                .output()
                .expect("run");
            assert!(
                !output.status.success(),
                "{config} {mode}: the run must have died"
            );
            let (code, status) = json_of(orchestrator_billing(&trio), &["status"]);
            assert_eq!(code, 1, "{config} {mode}: {status}");
            assert!(
                status["interrupted"][0]
                    .as_str()
                    .is_some_and(|l| l.contains("interrupted run")),
                "{config} {mode}: {status}"
            );
            let (code, recovered) = json_of(orchestrator_billing(&trio), &["recover"]);
            assert_eq!(code, 0, "{config} {mode}: {recovered}");
            for (db, table) in [
                (&trio.pair.auth, "users"),
                (&trio.pair.app, "datasets"),
                (&trio.billing, "invoices"),
            ] {
                assert_eq!(
                    count(&mut db.connect(), table),
                    0,
                    "{config} {mode}: {table}"
                );
            }
            let (code, verified) = json_of(orchestrator_billing(&trio), &["verify"]);
            assert_eq!(code, 0, "{config} {mode}: {verified}");
            assert_eq!(
                store_names(&verified),
                ["auth", "app", "billing"],
                "{verified}"
            );
            println!(
                "THREE STORES {config} ORCH_TWO_PHASE={mode}: migrate, verify's reference, the \
                 refused partial reset and the settled crash all covered billing"
            );
        }
    }
}
