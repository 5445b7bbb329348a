//! The command line as people and scripts meet it: a closed pipe ends the report, not the
//! command, and never with a panic.

use orch_tests::{for_each_backend, process, TestPair};

/// Runs the binary on the pair with `args` and stdout a pipe whose reader is already gone
/// (`| head` that has read enough); its exit code and stderr.
fn into_closed_pipe(pair: &TestPair, args: &[&str]) -> (Option<i32>, String) {
    into_closed_pipe_from(process(pair), args)
}

fn into_closed_pipe_from(mut cmd: std::process::Command, args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let output = cmd.args(args).stdout(writer).output().expect("run");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_closed_pipe_ends_the_report_quietly_with_the_usual_exit_code() {
    for_each_backend("closed_pipe", |pair| {
        let (code, stderr) = into_closed_pipe(pair, &["migrate"]);
        assert_eq!(code, Some(0), "migrate: {stderr}");
        // The migration happened although nobody read its report.
        let (code, _) = orch_tests::json_of(orch_tests::orchestrator(pair), &["status"]);
        assert_eq!(code, 0);
        orch_tests::seed::contract_rows(pair);
        for (args, expected) in [
            (&["status"][..], 0),
            (&["verify"][..], 0),
            (&["diff"][..], 0),
            (&["smoke"][..], 0),
            (&["migrate"][..], 0),
            (&["adopt"][..], 0),
            (&["repair", "--dry-run"][..], 0),
            (&["repair"][..], 0),
            (&["reset", "--dry-run"][..], 3),
            (&["--format", "json", "status"][..], 0),
            (&["completions", "bash"][..], 0),
            (&["backup"][..], 0),
            (&["backups", "list"][..], 0),
            (&["backups", "prune", "--keep", "5", "--dry-run"][..], 0),
            (&["recover"][..], 0),
            (&["schema"][..], 0),
            (&["schema", "--mermaid"][..], 0),
            (&["lint"][..], 0),
            (&["revert", "--dry-run", "--store", "app"][..], 0),
            (&["--help"][..], 0),
            // The writing commands, last: their reports go nowhere, their work is done.
            (&["reset", "--force"][..], 0),
            (
                &["revert", "--store", "app", "--steps", "1", "--force"][..],
                0,
            ),
            (&["migrate"][..], 0),
            (&["recover"][..], 0),
        ] {
            let (code, stderr) = into_closed_pipe(pair, args);
            assert!(
                !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
                "{args:?} on {}: {stderr}",
                pair.backend
            );
            assert_eq!(
                code,
                Some(expected),
                "{args:?} on {}: {stderr}",
                pair.backend
            );
        }
        let (code, sets) =
            orch_tests::json_of(orch_tests::orchestrator(pair), &["backups", "list"]);
        assert_eq!(code, 0, "{sets}");
        let set = sets["sets"][0]["path"].as_str().expect("a set").to_string();
        let (code, stderr) = into_closed_pipe(pair, &["restore", &set, "--force"]);
        assert_eq!(code, Some(0), "restore on {}: {stderr}", pair.backend);
        assert!(!stderr.contains("panicked"), "{stderr}");
    });
    // The commands that write into the source tree, in a copy of the workspace.
    let tmp = tempfile::tempdir().expect("dir");
    let ws = crate::workspace::workspace_copy(tmp.path());
    for args in [
        &["generate", "--store", "app", "probe"][..],
        &["squash", "--store", "app", "--backend", "sqlite"][..],
    ] {
        let (code, stderr) = into_closed_pipe_from(orch_tests::process_in(&ws), args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn status_exits_1_while_a_store_needs_attention_and_names_its_version() {
    for_each_backend("status_attention", |pair| {
        let output = orch_tests::orchestrator(pair)
            .args(["--format", "json", "status"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("orchestrator migrate"), "{stderr}");
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("one JSON document");
        for store in report["stores"].as_array().expect("stores") {
            assert_eq!(store["needs_attention"], true, "{store}");
            assert_eq!(store["current"], serde_json::Value::Null, "{store}");
        }

        orch_tests::orchestrator(pair)
            .arg("migrate")
            .assert()
            .success();
        let (code, report) = orch_tests::json_of(orch_tests::orchestrator(pair), &["status"]);
        assert_eq!(code, 0, "{report}");
        for (i, store) in [&auth_db::STORE, &app_db::STORE].into_iter().enumerate() {
            let shipped = shared::migrations::shipped(store, pair.backend).expect("shipped");
            let newest = shipped
                .last()
                .map(|(_, name)| name.clone())
                .expect("a migration");
            assert_eq!(report["stores"][i]["current"], newest.as_str(), "{report}");
            assert_eq!(report["stores"][i]["needs_attention"], false, "{report}");
        }
    });
}

#[test]
fn with_json_every_outcome_is_one_document_on_stdout_errors_included() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (args, exit) in [
        // A configuration error, found after parsing.
        (
            &[
                "--format",
                "json",
                "--url",
                "auth=mysql://db/auth",
                "status",
            ][..],
            2,
        ),
        // A command line that does not parse at all.
        (&["--format=json", "frobnicate"][..], 2),
    ] {
        let output = orch_tests::orchestrator_in(dir.path())
            .args(args)
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(exit), "{args:?}");
        let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not one JSON document ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        });
        assert_eq!(doc["ok"], false, "{doc}");
        assert_eq!(doc["error"]["exit"], exit, "{doc}");
        let message = doc["error"]["message"].as_str().expect("message");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(message),
            "{args:?}: stderr {stderr} vs {message}"
        );
    }
}

#[test]
fn colour_follows_the_flag_no_color_and_clicolor_force_and_never_costs_alignment() {
    for_each_backend("colour", |pair| {
        orch_tests::orchestrator(pair)
            .arg("migrate")
            .assert()
            .success();
        let coloured = |flags: &[&str], env: &[(&str, &str)]| -> (bool, String) {
            let mut cmd = orch_tests::orchestrator(pair);
            for (k, v) in env {
                cmd.env(k, v);
            }
            let output = cmd.args(flags).arg("smoke").output().expect("run");
            assert_eq!(output.status.code(), Some(0), "{flags:?} {env:?}");
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            (stdout.contains("\x1b["), stdout)
        };
        // Piped (as here), auto colours nothing; CLICOLOR_FORCE colours; NO_COLOR wins
        // over it; --color decides over both.
        assert!(!coloured(&[], &[]).0, "auto, piped");
        // On a terminal, auto colours.
        let mut on_tty = process(pair);
        on_tty.args(["--color", "auto", "smoke"]);
        let shown = orch_tests::on_terminal(&on_tty)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("script");
        assert!(
            String::from_utf8_lossy(&shown.stdout).contains("\x1b[32m"),
            "auto on a terminal: {}",
            String::from_utf8_lossy(&shown.stdout)
        );
        assert!(
            coloured(&[], &[("CLICOLOR_FORCE", "1")]).0,
            "CLICOLOR_FORCE"
        );
        assert!(
            !coloured(&[], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]).0,
            "NO_COLOR"
        );
        assert!(
            coloured(&["--color", "always"], &[("NO_COLOR", "1")]).0,
            "always"
        );
        assert!(
            !coloured(&["--color", "never"], &[("CLICOLOR_FORCE", "1")]).0,
            "never"
        );
        // Coloured or not, the table's columns start at the same places.
        let strip = |s: &str| {
            s.replace("\x1b[32m", "")
                .replace("\x1b[31m", "")
                .replace("\x1b[0m", "")
        };
        let (_, with) = coloured(&["--color", "always"], &[]);
        let (_, without) = coloured(&["--color", "never"], &[]);
        let columns = |text: &str| -> Vec<usize> {
            text.lines()
                .filter(|l| l.contains("pass") || l.contains("result"))
                .map(|l| l.find("pass").or_else(|| l.find("result")).unwrap_or(0))
                .collect()
        };
        let with = strip(&with);
        assert_eq!(columns(&with), columns(&without), "{with}\n---\n{without}");
        let starts = columns(&without);
        assert!(starts.windows(2).all(|w| w[0] == w[1]), "{without}");
    });
}

/// Runs `args` on the pair on a terminal of its own; once the question appears, types
/// `answer`. The exit code and everything the terminal showed.
fn answered(pair: &TestPair, args: &[&str], answer: &str) -> (Option<i32>, String) {
    use std::io::{Read, Write};
    let mut cmd = process(pair);
    cmd.args(args);
    let mut term = orch_tests::on_terminal(&cmd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script");
    let mut stdin = term.stdin.take().expect("stdin");
    let mut stdout = term.stdout.take().expect("stdout");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().expect("seen").extend_from_slice(&buf[..n]);
            }
        })
    };
    let shown = || String::from_utf8_lossy(&seen.lock().expect("seen")).into_owned();
    // Typed once the question is on the terminal, as a person would.
    let asked = std::time::Instant::now();
    while !shown().contains("[y/N]") && asked.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    stdin.write_all(answer.as_bytes()).expect("type");
    stdin.flush().expect("flush");
    let status = term.wait().expect("wait");
    drop(stdin);
    reader.join().expect("reader");
    (status.code(), shown())
}

#[test]
fn a_person_at_a_terminal_is_asked_before_data_goes_and_no_is_the_default() {
    for_each_backend("terminal_prompt", |pair| {
        orch_tests::orchestrator(pair)
            .arg("migrate")
            .assert()
            .success();
        orch_tests::seed::contract_rows(pair);
        let before = orch_tests::checksums::snapshots(pair);

        let (code, shown) = answered(pair, &["reset"], "n");
        assert!(shown.contains("[y/N]"), "{shown}");
        assert!(
            shown.contains("users (3 rows)"),
            "the inventory is shown: {shown}"
        );
        assert_eq!(code, Some(3), "{shown}");
        assert_eq!(
            orch_tests::checksums::snapshots(pair),
            before,
            "no changes nothing"
        );

        let (code, shown) = answered(pair, &["reset"], "y");
        assert_eq!(code, Some(0), "{shown}");
        let (auth, app) = orch_tests::checksums::snapshots(pair);
        assert_eq!(auth.total_rows() + app.total_rows(), 0, "{shown}");

        // Without a terminal nothing is asked: refused, exit 3, as scripts expect; --yes
        // answers for them.
        orch_tests::seed::contract_rows(pair);
        let (code, _) = orch_tests::json_of(orch_tests::orchestrator(pair), &["reset"]);
        assert_eq!(code, 3);
        let (code, report) =
            orch_tests::json_of(orch_tests::orchestrator(pair), &["reset", "--yes"]);
        assert_eq!(code, 0, "{report}");
    });
}

#[test]
fn progress_is_one_line_per_store_on_a_terminal_and_nothing_elsewhere() {
    let Some(pair) = TestPair::new(shared::Backend::Postgres, "progress_lines") else {
        return;
    };
    orch_tests::orchestrator(&pair)
        .arg("migrate")
        .assert()
        .success();
    orch_tests::seed::contract_rows(&pair);
    // Paused 3 s after auth's dump, so its line is drawn for certain.
    let slow = |args: &[&str]| {
        let mut cmd = process(&pair);
        cmd.env("ORCH_FAULT", "pause-after-dump:auth").args(args);
        cmd
    };
    let output = orch_tests::on_terminal(&slow(&["backup"]))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script");
    let shown = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("backing up to"),
        "a terminal shows the step: {shown}"
    );
    assert!(shown.contains("auth"), "{shown}");
    assert!(shown.contains("backup: "), "and then the report: {shown}");
    let (code, sets) = orch_tests::json_of(orch_tests::orchestrator(&pair), &["backups", "list"]);
    assert_eq!(code, 0, "{sets}");
    let set = sets["sets"][0]["path"]
        .as_str()
        .expect("the set's folder")
        .to_string();

    // A restore shows how much of the dump the server took, and how fast; verify how
    // many rows of each reference it checked. (Paused so that the lines are drawn.)
    let mut restore = process(&pair);
    restore
        .env("ORCH_FAULT", "pause-before-commit:auth")
        .args(["restore", &set, "--force"]);
    let output = orch_tests::on_terminal(&restore)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script");
    let shown = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{shown}");
    assert!(shown.contains("restoring: "), "{shown}");
    assert!(shown.contains("%, ") && shown.contains("/s)"), "{shown}");
    assert!(
        shown.contains("auth: restored"),
        "and then the report: {shown}"
    );
    let mut verify = process(&pair);
    verify
        .env("ORCH_FAULT", "pause-mid-check:app")
        .arg("verify");
    let output = orch_tests::on_terminal(&verify)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script");
    let shown = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("app.datasets.owner_id → auth.users.id: ")
            && shown.contains("rows checked ("),
        "{shown}"
    );

    for args in [
        &["backup"][..],
        &["--format", "json", "backup"][..],
        &["-q", "backup"][..],
    ] {
        let output = slow(args).output().expect("run");
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains("backing up"),
            "no progress without a terminal: {args:?}: {stderr}"
        );
    }
    let output = orch_tests::on_terminal(&slow(&["--format", "json", "backup"]))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script");
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(!shown.contains("backing up"), "never with JSON: {shown}");
}
