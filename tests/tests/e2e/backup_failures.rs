//! A backup that fails part way leaves nothing behind: with the file size limited as on
//! a nearly full disk (`ulimit -f`, the signal ignored so that writes fail with EFBIG
//! instead of killing the writer), `reset --force` and `backup` fail cleanly, change
//! nothing, and leave no partial file to fill the disk further.

use orch_tests::checksums::data_checksums;
use orch_tests::{exec, for_each_backend, orchestrator, under_shell, TestPair};
use shared::Backend;

/// The binary on the pair with every file it (and pg_dump) writes limited to 64 KiB.
fn with_small_disk(pair: &TestPair, args: &[&str]) -> std::process::Output {
    let mut cmd = orch_tests::process(pair);
    cmd.args(args);
    under_shell(&cmd, "trap '' XFSZ; ulimit -f 64")
        .output()
        .expect("run under a file size limit")
}

/// Every file under the pair's backup folder.
fn backup_files(pair: &TestPair) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&pair.path().join(".data/backups"), &mut files);
    files
}

#[test]
fn a_backup_that_runs_out_of_space_removes_its_partial_files_and_changes_nothing() {
    for_each_backend("backup_full_disk", |pair| {
        orchestrator(pair).arg("migrate").assert().success();
        // Rows that do not compress to under the limit (pg_dump compresses).
        let big = match pair.backend {
            Backend::Postgres => {
                "INSERT INTO verifications (id, identifier, value, expires_at) \
                 SELECT 'v' || g, md5(g::text) || md5((g + 1)::text), 'v', now() FROM generate_series(1, 20000) g"
            }
            Backend::Sqlite => {
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 20000) \
                 INSERT INTO verifications (id, identifier, value, expires_at) \
                 SELECT 'v' || n, hex(randomblob(32)), 'v', CURRENT_TIMESTAMP FROM g"
            }
        };
        exec(&mut pair.auth.connect(), big);
        let before = data_checksums(&mut pair.auth.connect());
        for args in [&["reset", "--force"][..], &["backup"]] {
            let output = with_small_disk(pair, args);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(4),
                "{} {args:?}: {stderr}",
                pair.backend
            );
            assert!(
                stderr.contains("nothing was changed") || args == ["backup"],
                "{stderr}"
            );
            assert_eq!(
                backup_files(pair),
                Vec::<std::path::PathBuf>::new(),
                "{args:?}: no partial file is left"
            );
            assert_eq!(data_checksums(&mut pair.auth.connect()), before, "{args:?}");
        }
    });
}
