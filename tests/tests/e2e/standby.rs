//! A hot standby as a store: a real streaming replica (`pg_basebackup -R`) of a server of
//! the test's own. The reports (`status`, `verify`, text and JSON) name it as a read-only
//! replica; every command that writes refuses it before anything (exit 2), and so do
//! `diff --replay` and squash, whose scratch databases it cannot hold; what only reads
//! (status, verify, backup, diff from the recorded model, or replaying elsewhere) works.

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use orch_tests::{count, json_of, TestDb, TestPair};
use shared::{Backend, Conn, DatabaseUrl};
use support::{Auth, OwnCluster};

fn pair_on(dir: &Path, auth: &str, app: &str) -> TestPair {
    let db = |url: &str| TestDb::existing(DatabaseUrl::parse(url).expect("url"));
    TestPair {
        backend: Backend::Postgres,
        auth: db(auth),
        app: db(app),
        dir: tempfile::tempdir_in(dir).expect("work dir"),
    }
}

fn run(pair: &TestPair, args: &[&str]) -> (i32, String, String) {
    let output = orch_tests::orchestrator(pair)
        .args(args)
        .output()
        .expect("run");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn in_recovery(conn: &mut Conn) -> bool {
    #[derive(diesel::QueryableByName)]
    struct R {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        v: bool,
    }
    let Conn::Postgres(pg) = conn else {
        return false;
    };
    diesel::RunQueryDsl::get_result::<R>(diesel::sql_query("SELECT pg_is_in_recovery() AS v"), pg)
        .expect("pg_is_in_recovery")
        .v
}

/// Waits until the standby has replayed a row the primary just committed: it streams.
fn wait_for_replay(primary: &TestDb, standby: &TestDb) {
    orch_tests::exec(
        &mut primary.connect(),
        "INSERT INTO users (id, email) VALUES ('streamed', 'streamed@x')",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut conn = standby.connect();
    while count(&mut conn, "users") != 4 {
        assert!(
            Instant::now() < deadline,
            "the standby never replayed the row"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_hot_standby_is_named_by_every_report_and_refused_by_every_writer() {
    if !orch_tests::backends().contains(&Backend::Postgres) {
        return;
    }
    let Some(primary) = OwnCluster::start("standby", Auth::Trust) else {
        return;
    };
    primary.create_database("auth");
    primary.create_database("app");
    let work = tempfile::tempdir().expect("work");
    let on_primary = pair_on(work.path(), &primary.url("auth"), &primary.url("app"));
    orch_tests::orchestrator(&on_primary)
        .arg("migrate")
        .assert()
        .success();
    orch_tests::seed::contract_rows(&on_primary);
    let standby = primary.start_standby();
    // auth on the standby, app on the primary; then both on the standby.
    let pair = pair_on(work.path(), &standby.url("auth"), &primary.url("app"));
    let both = pair_on(work.path(), &standby.url("auth"), &standby.url("app"));
    assert!(in_recovery(&mut pair.auth.connect()), "a hot standby");
    wait_for_replay(&on_primary.auth, &pair.auth);

    // Reports work and say what it is.
    let (code, out, err) = run(&pair, &["status"]);
    assert_eq!(code, 0, "{out}{err}");
    let auth_part = out.split("\napp ").next().unwrap_or_default();
    assert!(
        auth_part.contains("read-only replica (a hot standby)"),
        "{out}"
    );
    assert_eq!(out.matches("read-only replica").count(), 1, "{out}");
    let (code, status) = json_of(orch_tests::orchestrator(&pair), &["status"]);
    assert_eq!(code, 0, "{status}");
    assert_eq!(status["stores"][0]["store"], "auth");
    assert_eq!(status["stores"][0]["read_only_replica"], true);
    assert_eq!(status["stores"][1]["read_only_replica"], false);
    let (code, out, err) = run(&pair, &["verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("auth: ok (read-only replica"), "{out}");
    assert!(out.contains("app: ok\n"), "{out}");
    let (code, verify) = json_of(orch_tests::orchestrator(&both), &["verify"]);
    assert_eq!(code, 0, "{verify}");
    assert_eq!(verify["stores"][0]["read_only_replica"], true);
    assert_eq!(verify["stores"][1]["read_only_replica"], true);
    assert_eq!(
        verify["read_only_replicas"],
        serde_json::json!(["auth", "app"])
    );
    // `--store app` reads auth for the references only; it is named all the same.
    let (code, out, err) = run(&pair, &["verify", "--store", "app"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("auth: read-only replica (a hot standby)")
            && out.contains("(read for the references)"),
        "{out}"
    );

    // Backing a standby up is reading it; the set then serves the refused restore below.
    let sets = work.path().join("sets");
    let (code, out, err) = run(&pair, &["backup", "--out", &sets.to_string_lossy()]);
    assert_eq!(code, 0, "{out}{err}");
    let set = std::fs::read_dir(&sets)
        .expect("sets")
        .flatten()
        .next()
        .expect("a backup set")
        .path();

    // Every writer is refused before anything, naming the standby.
    let set = set.to_string_lossy().into_owned();
    let writers: [&[&str]; 8] = [
        &["migrate"],
        &["migrate", "--store", "app"],
        &["reset", "--force"],
        &["reset", "--store", "app", "--force", "--no-backup"],
        &["reset", "--dry-run"],
        &["restore", &set, "--force"],
        &["recover"],
        &["smoke"],
    ];
    for (which, p) in [
        ("auth on the standby", &pair),
        ("both on the standby", &both),
    ] {
        for args in writers {
            let (code, out, err) = run(p, args);
            assert_eq!(code, 2, "{which}, {args:?}: {out}{err}");
            assert!(
                err.contains("auth (postgres://postgres@127.0.0.1:")
                    && err.contains("read-only replica")
                    && err.contains(&format!("and {} writes", args[0]))
                    && err.contains("nothing was changed")
                    && err.lines().count() == 1,
                "{which}, {args:?}: {err}"
            );
            assert_eq!(
                err.contains(" and app ("),
                std::ptr::eq(p, &both),
                "{which}, {args:?}: {err}"
            );
        }
    }
    // diff compares with the model recorded with the build: it only reads. Replaying the
    // migrations needs a scratch database, which a standby cannot hold: refused, unless
    // the scratch database goes elsewhere.
    let (code, out, err) = run(&pair, &["diff"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&pair, &["diff", "--replay"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("is a read-only replica") && err.contains("--shadow-url"),
        "{err}"
    );
    let shadow = primary.url("postgres");
    let (code, out, err) = run(&pair, &["diff", "--replay", "--shadow-url", &shadow]);
    assert_eq!(code, 0, "{out}{err}");
    // squash, likewise, on a copy of auth's history that must come out untouched.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let history = work.path().join("history");
    orch_tests::copy_dir(&root.join("auth-db/migrations"), &history);
    let listing = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("folder")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = (listing(&history), listing(&history.join("postgres")));
    let dir = history.to_string_lossy().into_owned();
    let squash = ["squash", "--store", "auth", "--backend", "postgres"];
    let (code, out, err) = run(&pair, &[&squash[..], &["--migrations-dir", &dir]].concat());
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("is a read-only replica") && err.contains("--shadow-url"),
        "{err}"
    );
    assert_eq!(
        (listing(&history), listing(&history.join("postgres"))),
        before
    );

    // Nothing was changed, on either server; no backup was written by the refused resets.
    let mut auth = on_primary.auth.connect();
    assert_eq!(count(&mut auth, "users"), 4);
    assert_eq!(count(&mut on_primary.app.connect(), "datasets"), 2);
    assert!(!pair.path().join(".data").exists() && !both.path().join(".data").exists());
    assert!(in_recovery(&mut pair.auth.connect()));
    assert_eq!(count(&mut pair.auth.connect(), "users"), 4);
    // The same writers against the primary work: the refusal was the standby's.
    let (code, out, err) = run(&on_primary, &["reset", "--force", "--no-backup"]);
    assert_eq!(code, 0, "{out}{err}");
}
