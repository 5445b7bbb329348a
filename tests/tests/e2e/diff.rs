//! `diff` (and later `squash`) through the real binary, on both backends.

use orch_tests::{exec, for_each_backend, json_of, orchestrator};
use shared::Backend;

/// Five kinds of drift, one per statement group, each on its own table.
fn drift(backend: Backend) -> (&'static str, &'static str) {
    match backend {
        Backend::Postgres => (
            "ALTER TABLE sessions DROP CONSTRAINT sessions_user_id_fkey;
             ALTER TABLE sessions ADD CONSTRAINT sessions_user_id_fkey
                 FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL;",
            "ALTER TABLE datasets ADD COLUMN x TEXT;
             CREATE INDEX datasets_name_idx ON datasets (name);
             ALTER TABLE documents ALTER COLUMN filename DROP NOT NULL;
             ALTER TABLE processing_jobs DROP CONSTRAINT processing_jobs_document_id_fkey;",
        ),
        // SQLite changes a column or a foreign key by rebuilding the table.
        Backend::Sqlite => (
            "PRAGMA foreign_keys = OFF;
             CREATE TABLE sessions_new (
                 id TEXT PRIMARY KEY NOT NULL,
                 user_id TEXT NOT NULL REFERENCES users (id) ON DELETE SET NULL,
                 token TEXT NOT NULL UNIQUE, expires_at TIMESTAMP NOT NULL,
                 ip_address TEXT, user_agent TEXT,
                 created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
             DROP TABLE sessions;
             ALTER TABLE sessions_new RENAME TO sessions;
             CREATE INDEX sessions_user_id_idx ON sessions (user_id);
             PRAGMA foreign_keys = ON;",
            "PRAGMA foreign_keys = OFF;
             ALTER TABLE datasets ADD COLUMN x TEXT;
             CREATE INDEX datasets_name_idx ON datasets (name);
             CREATE TABLE documents_new (
                 id TEXT PRIMARY KEY NOT NULL,
                 dataset_id TEXT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
                 filename TEXT, content_type TEXT, size_bytes BIGINT,
                 created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
             DROP TABLE documents;
             ALTER TABLE documents_new RENAME TO documents;
             CREATE INDEX documents_dataset_id_idx ON documents (dataset_id);
             PRAGMA foreign_keys = ON;",
        ),
    }
}

fn kinds(report: &serde_json::Value, store: usize) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = report["stores"][store]["differences"]
        .as_array()
        .unwrap_or_else(|| panic!("no differences array: {report}"))
        .iter()
        .map(|d| {
            for field in ["expected", "found", "advice"] {
                assert!(d.get(field).is_some(), "{field} missing in {d}");
            }
            (
                d["kind"].as_str().unwrap_or_default().to_string(),
                d["table"].as_str().unwrap_or_default().to_string(),
                d["object"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_clean_database_has_no_difference_and_each_drift_is_named() {
    for_each_backend("e2e_diff", |pair| {
        orchestrator(pair).arg("migrate").assert().success();

        let out = orchestrator(pair).arg("diff").output().expect("run diff");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(text.matches("No difference detected").count(), 2, "{text}");

        let (auth_sql, app_sql) = drift(pair.backend);
        exec(&mut pair.auth.connect(), auth_sql);
        exec(&mut pair.app.connect(), app_sql);
        if pair.backend == Backend::Sqlite {
            // The FK is dropped by rebuilding processing_jobs without it.
            exec(
                &mut pair.app.connect(),
                "PRAGMA foreign_keys = OFF;
                 CREATE TABLE pj (
                     id TEXT PRIMARY KEY NOT NULL, document_id TEXT NOT NULL,
                     status TEXT NOT NULL DEFAULT 'queued'
                         CHECK (status IN ('queued', 'running', 'done', 'failed')),
                     attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
                     error TEXT,
                     created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
                     updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
                 DROP TABLE processing_jobs;
                 ALTER TABLE pj RENAME TO processing_jobs;
                 CREATE INDEX processing_jobs_document_id_idx ON processing_jobs (document_id);
                 CREATE INDEX processing_jobs_status_idx ON processing_jobs (status);",
            );
        }

        let (code, report) = json_of(orchestrator(pair), &["diff"]);
        assert_eq!(code, 1, "{report}");
        assert_eq!(report["ok"], false);
        assert_eq!(report["stores"][0]["store"], "auth");
        assert_eq!(
            kinds(&report, 0),
            [(
                "foreign_key_action".into(),
                "sessions".into(),
                "sessions.user_id → users.id".into()
            )],
            "{} {report}",
            pair.backend
        );
        let app = kinds(&report, 1);
        let expected: Vec<(String, String, String)> = vec![
            (
                "column_nullability".into(),
                "documents".into(),
                "filename".into(),
            ),
            (
                "missing_foreign_key".into(),
                "processing_jobs".into(),
                "processing_jobs.document_id → documents.id".into(),
            ),
            ("unexpected_column".into(), "datasets".into(), "x".into()),
            (
                "unexpected_index".into(),
                "datasets".into(),
                "`datasets_name_idx` (name)".into(),
            ),
        ];
        let mut expected = expected;
        expected.sort();
        assert_eq!(app, expected, "{} {report}", pair.backend);

        let out = orchestrator(pair)
            .args(["diff", "--store", "app"])
            .output()
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text.contains("app.datasets: column `x` exists in the database but not in the migrations: write a migration that adds it, or drop it"),
            "{text}"
        );
        assert!(
            !text.contains("auth."),
            "--store app covers app only: {text}"
        );
    });
}

#[test]
fn the_scratch_database_is_dropped_on_error_and_on_ctrl_c() {
    for_each_backend("e2e_diff_scratch", |pair| {
        if pair.backend != Backend::Postgres {
            return;
        }
        // A history whose last migration fails: exit 4, and no scratch database left.
        let broken = pair.path().join("broken");
        for (folder, sql) in [
            (
                "2024-01-01-000001_ok",
                "CREATE TABLE t (id TEXT PRIMARY KEY);",
            ),
            (
                "2024-01-01-000002_bad",
                "CREATE TABLE t (id TEXT PRIMARY KEY);",
            ),
        ] {
            let dir = broken.join("postgres").join(folder);
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(dir.join("up.sql"), sql).expect("up");
            std::fs::write(dir.join("down.sql"), "SELECT 1;").expect("down");
        }
        let child = orch_tests::process(pair)
            .args(["diff", "--store", "auth", "--migrations-dir"])
            .arg(&broken)
            .output()
            .expect("run");
        assert_eq!(
            child.status.code(),
            Some(4),
            "{}",
            String::from_utf8_lossy(&child.stderr)
        );
        assert!(String::from_utf8_lossy(&child.stderr).contains("2024-01-01-000002_bad"));

        // Ctrl-C while the 71-migration history is being built in the scratch database.
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/history71");
        let mut child = orch_tests::process(pair)
            .args(["diff", "--store", "auth", "--migrations-dir"])
            .arg(&fixture)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let pid = child.id();
        let started = std::time::Instant::now();
        while orch_tests::scratch_databases_of(pid).is_empty() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "the scratch database never appeared"
            );
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let sent = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let status = child.wait().expect("wait");
        // The scratch database is seen within milliseconds of its creation, long before
        // 71 migrations are built in it, so the handler is what ends the run.
        assert_eq!(status.code(), Some(130), "{status:?}");
        assert_eq!(orch_tests::scratch_databases_of(pid), Vec::<String>::new());
    });
}
