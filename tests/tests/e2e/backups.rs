//! `backups list` and `backups prune`: the sets piling up under the backup folder, listed
//! with what each holds, and removed only under the rules of every destructive command.

use std::path::Path;

use orch_tests::{for_each_backend, json_of, orchestrator};

fn names(report: &serde_json::Value, key: &str) -> Vec<String> {
    report[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {report}"))
        .iter()
        .map(|s| s["name"].as_str().expect("name").to_string())
        .collect()
}

fn folders(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .expect("backup folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    found
}

#[test]
fn sets_are_listed_and_old_ones_pruned_only_with_force_and_confirmation() {
    for_each_backend("backups_prune", |pair| {
        orchestrator(pair).arg("migrate").assert().success();
        orch_tests::seed::contract_rows(pair);
        let mut made = Vec::new();
        for _ in 0..3 {
            let (code, report) = json_of(orchestrator(pair), &["backup"]);
            assert_eq!(code, 0, "{report}");
            made.push(report["dir"].as_str().expect("dir").to_string());
        }
        let base = pair.path().join(".data/backups");
        // A backup that never finished (no manifest), untouched for two hours, and a
        // folder of someone else's.
        let dead = base.join("20200101T000000.000Z");
        std::fs::create_dir_all(&dead).expect("mkdir");
        std::fs::write(dead.join("auth.dump"), b"half a dump").expect("write");
        let touched = std::process::Command::new("touch")
            .args(["-d", "2 hours ago"])
            .arg(&dead)
            .status()
            .expect("touch");
        assert!(touched.success());
        std::fs::create_dir_all(base.join("notes")).expect("mkdir");

        let (code, list) = json_of(orchestrator(pair), &["backups", "list"]);
        assert_eq!(code, 0, "{list}");
        let sets = list["sets"].as_array().expect("sets");
        assert_eq!(sets.len(), 4, "{list}");
        assert_eq!(sets[0]["complete"], false, "{list}");
        assert!(sets[1..].iter().all(|s| s["complete"] == true), "{list}");
        assert!(sets[1]["bytes"].as_u64().is_some_and(|b| b > 0), "{list}");

        // The incomplete set cannot be restored, and says why.
        let output = orchestrator(pair)
            .args(["restore", dead.to_str().expect("utf8"), "--force"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_ne!(output.status.code(), Some(0));
        assert!(stderr.contains("incomplete backup set"), "{stderr}");

        let before = folders(&base);
        // Refused without --force; a dry run shows the plan and exits with the guard's
        // verdict, as reset's does.
        let (code, refused) = json_of(orchestrator(pair), &["backups", "prune", "--keep", "1"]);
        assert_eq!(code, 3, "{refused}");
        let (code, plan) = json_of(
            orchestrator(pair),
            &["backups", "prune", "--keep", "1", "--dry-run"],
        );
        assert_eq!(code, 3, "{plan}");
        assert!(
            plan["refused"]
                .as_str()
                .is_some_and(|r| r.contains("--force")),
            "{plan}"
        );
        let (code, plan) = json_of(
            orchestrator(pair),
            &["backups", "prune", "--keep", "1", "--dry-run", "--force"],
        );
        assert_eq!(code, 0, "{plan}");
        assert_eq!(names(&plan, "delete").len(), 3, "{plan}");
        assert_eq!(
            names(&plan, "keep"),
            [made[2].rsplit('/').next().expect("name")]
        );
        assert_eq!(
            folders(&base),
            before,
            "refusals and dry runs remove nothing"
        );

        // A protected profile wants every database named.
        std::fs::write(
            pair.path().join("orchestrator.toml"),
            "[default]\nprotected = true\n",
        )
        .expect("toml");
        let (code, refused) = json_of(
            orchestrator(pair),
            &["backups", "prune", "--keep", "1", "--force"],
        );
        assert_eq!(code, 3, "{refused}");
        assert_eq!(folders(&base), before);
        let why = refused["refused"].as_str().unwrap_or_default();
        assert!(
            why.starts_with("refusing to prune backups of protected store(s)"),
            "{refused}"
        );
        let mut confirm = vec!["backups", "prune", "--keep", "1", "--force"];
        let databases: Vec<String> = sets[1]["stores"]
            .as_array()
            .expect("stores")
            .iter()
            .map(|s| s["database"].as_str().expect("database").to_string())
            .collect();
        for d in &databases {
            assert!(why.contains(&format!("--confirm {d}")), "{refused}");
            confirm.extend(["--confirm", d.as_str()]);
        }
        let (code, pruned) = json_of(orchestrator(pair), &confirm);
        assert_eq!(code, 0, "{pruned}");
        assert!(
            pruned["bytes_freed"].as_u64().is_some_and(|b| b > 0),
            "{pruned}"
        );
        let kept = made[2].rsplit('/').next().expect("name").to_string();
        assert_eq!(
            folders(&base),
            [kept, "notes".to_string()],
            "only this tool's old sets go"
        );
    });
}

#[test]
fn ctrl_c_during_a_backup_removes_the_unfinished_set() {
    let Some(pair) = orch_tests::TestPair::new(shared::Backend::Postgres, "backups_ctrl_c") else {
        return;
    };
    orchestrator(&pair).arg("migrate").assert().success();
    orch_tests::seed::contract_rows(&pair);
    // In a process group of its own, signalled as a terminal signals Ctrl-C: the whole
    // group, pg_dump included.
    let mut cmd = orch_tests::process(&pair);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd
        .args(["backup"])
        // Paused once pg_dump has written auth's file, the set has no manifest yet.
        .env("ORCH_FAULT", "pause-after-dump:auth")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let base = pair.path().join(".data/backups");
    let started = std::time::Instant::now();
    let dump = loop {
        let found = std::fs::read_dir(&base)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("auth.dump"))
            .find(|p| p.exists());
        if let Some(dump) = found {
            break dump;
        }
        assert!(started.elapsed().as_secs() < 30, "no dump appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let sent = std::process::Command::new("kill")
        .args(["-INT", "--", &format!("-{}", child.id())])
        .status()
        .expect("kill");
    assert!(sent.success());
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("removed the unfinished backup set"),
        "{stderr}"
    );
    let set = dump.parent().expect("set folder");
    assert!(!set.exists(), "{} is still there", set.display());
}
