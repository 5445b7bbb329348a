use super::*;

const STORES: &[&str] = &["auth", "app"];

/// The URL resolved for `store`, as printed.
fn url(s: &Settings, store: &str) -> String {
    s.url_for(store)
        .expect("a known store")
        .redacted()
        .to_string()
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(dir: &Path, overrides: &Overrides, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::load_with_env(dir, STORES, overrides, &|k| env.get(k).cloned())
}

#[test]
fn defaults_are_the_embedded_pair() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Settings::load_with_env(dir.path(), STORES, &Overrides::default(), &no_env)
        .expect("defaults");
    assert_eq!(url(&s, "auth"), "sqlite://.data/auth.sqlite3");
    assert_eq!(url(&s, "app"), "sqlite://.data/app.sqlite3");
    assert_eq!(s.profile, "default");
    assert!(!s.protected);
}

#[test]
fn each_layer_overrides_the_one_below() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        "[default]\nauth_url = \"sqlite://file-default.db\"\napp_url = \"sqlite://file-app.db\"\n\
         [production]\nauth_url = \"postgres://u@db.example.com/auth\"\nprotected = true\n",
    )
    .expect("write toml");
    let s = load(dir.path(), &Overrides::default(), &[]).expect("file");
    // A path written in the file is relative to the file's folder.
    let in_dir = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    assert_eq!(url(&s, "auth"), in_dir("file-default.db"));

    let s = load(
        dir.path(),
        &Overrides::default(),
        &[(ENV_PROFILE, "production")],
    )
    .expect("profile");
    assert_eq!(url(&s, "auth"), "postgres://u@db.example.com/auth");
    assert_eq!(
        url(&s, "app"),
        in_dir("file-app.db"),
        "[default] applies to every profile"
    );
    assert!(s.protected);

    std::fs::write(
        dir.path().join(".env"),
        "AUTH_DATABASE_URL=sqlite://dotenv.db\nOTHER=1\n",
    )
    .expect("env");
    let s = load(dir.path(), &Overrides::default(), &[]).expect("dotenv");
    assert_eq!(url(&s, "auth"), "sqlite://dotenv.db");

    let s = load(
        dir.path(),
        &Overrides::default(),
        &[(env_var("auth").as_str(), "sqlite://env.db")],
    )
    .expect("env");
    assert_eq!(url(&s, "auth"), "sqlite://env.db");

    let flags = Overrides::default().with_url("auth", "sqlite://flag.db");
    let s = load(
        dir.path(),
        &flags,
        &[(env_var("auth").as_str(), "sqlite://env.db")],
    )
    .expect("flag");
    assert_eq!(url(&s, "auth"), "sqlite://flag.db");
    assert!(
        s.sources
            .iter()
            .any(|(k, v)| k == "auth_url" && v == "--auth-url"),
        "{:?}",
        s.sources
    );
}

#[test]
fn unknown_keys_and_profiles_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        "[default]\nauth_ur = \"x.db\"\n",
    )
    .expect("write");
    let err = load(dir.path(), &Overrides::default(), &[]).expect_err("typo must fail");
    assert!(err.to_string().contains("auth_ur"), "{err}");

    std::fs::write(
        dir.path().join(CONFIG_FILE),
        "[default]\nprotected = true\n",
    )
    .expect("write");
    let err = load(
        dir.path(),
        &Overrides {
            profile: Some("prod".into()),
            ..Overrides::default()
        },
        &[],
    )
    .expect_err("unknown profile");
    assert!(
        err.to_string().contains("prod") && err.to_string().contains("default"),
        "{err}"
    );

    std::fs::write(
        dir.path().join(CONFIG_FILE),
        "[default]\nprotected = \"yes\"\n",
    )
    .expect("write");
    let err = load(dir.path(), &Overrides::default(), &[]).expect_err("mistyped");
    assert!(err.to_string().contains("protected"), "{err}");

    std::fs::write(dir.path().join(CONFIG_FILE), "[default\n").expect("write");
    assert!(
        load(dir.path(), &Overrides::default(), &[]).is_err(),
        "malformed toml"
    );
}

#[test]
fn a_lock_timeout_the_server_cannot_take_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = load(
        dir.path(),
        &Overrides::default(),
        &[(ENV_LOCK_TIMEOUT, "99999999")],
    )
    .expect_err("too long");
    assert!(
        err.to_string().contains("lock_timeout_secs") && err.to_string().contains("2147483"),
        "{err}"
    );
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        "[default]\nlock_timeout_secs = 2147484\n",
    )
    .expect("write");
    assert!(load(dir.path(), &Overrides::default(), &[]).is_err());
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        "[default]\nlock_timeout_secs = 2147483\n",
    )
    .expect("write");
    let s = load(dir.path(), &Overrides::default(), &[]).expect("the largest bound");
    assert_eq!(s.lock_timeout.as_secs(), 2_147_483);
}

#[test]
fn explicit_config_file_must_exist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let overrides = Overrides {
        config_file: Some("nope.toml".into()),
        ..Overrides::default()
    };
    let err = load(dir.path(), &overrides, &[]).expect_err("missing file");
    assert!(err.to_string().contains("nope.toml"), "{err}");
}

#[test]
fn bad_url_in_environment_is_a_config_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = load(
        dir.path(),
        &Overrides::default(),
        &[(env_var("app").as_str(), "redis://h/0")],
    )
    .expect_err("bad scheme");
    assert!(
        matches!(err, ConfigError::UnsupportedScheme { .. }),
        "{err}"
    );
}

#[test]
fn every_per_store_key_follows_the_stores_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stores = &["auth", "app", "billing"];
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        "[default]\nbilling_schema = \"ledger\"\n",
    )
    .expect("write");
    let env =
        |k: &str| (k == "BILLING_DATABASE_URL").then(|| "sqlite://billing-env.db".to_string());
    let s =
        Settings::load_with_env(dir.path(), stores, &Overrides::default(), &env).expect("three");
    assert_eq!(url(&s, "billing"), "sqlite://billing-env.db");
    assert_eq!(s.url_for("billing").expect("billing").schema(), "ledger");
    assert_eq!(url(&s, "auth"), "sqlite://.data/auth.sqlite3");
    let names: Vec<&str> = s.urls.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["auth", "app", "billing"], "in the order given");

    // Without the third store its keys are unknown, and a URL for it is refused.
    let err = Settings::load_with_env(dir.path(), STORES, &Overrides::default(), &no_env)
        .expect_err("billing_schema is no key of two stores");
    assert!(err.to_string().contains("billing_schema"), "{err}");
    std::fs::remove_file(dir.path().join(CONFIG_FILE)).expect("rm");
    let flags = Overrides::default().with_url("billing", "sqlite://x.db");
    let err = Settings::load_with_env(dir.path(), STORES, &flags, &no_env).expect_err("unknown");
    assert!(
        matches!(err, ConfigError::UnknownStore(ref n) if n == "billing"),
        "{err}"
    );
    // Two different URLs for one store on one command line are a mistake, not a choice.
    let twice = Overrides::default()
        .with_url("auth", "sqlite://a.db")
        .with_url("auth", "sqlite://b.db");
    assert!(Settings::load_with_env(dir.path(), STORES, &twice, &no_env).is_err());
}

#[test]
fn a_database_url_names_no_store_and_is_mentioned_not_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = load(dir.path(), &Overrides::default(), &[]).expect("defaults");
    assert!(s.notes.is_empty(), "{:?}", s.notes);

    let s = load(
        dir.path(),
        &Overrides::default(),
        &[("DATABASE_URL", "postgres://u:secret@db/auth")],
    )
    .expect("loads");
    assert_eq!(url(&s, "auth"), "sqlite://.data/auth.sqlite3", "not read");
    assert_eq!(s.notes.len(), 1, "{:?}", s.notes);
    let note = &s.notes[0];
    assert!(
        note.contains("DATABASE_URL (from environment) is not read"),
        "{note}"
    );
    assert!(
        note.contains("AUTH_DATABASE_URL, APP_DATABASE_URL"),
        "{note}"
    );
    assert!(!note.contains("secret"), "{note}");

    std::fs::write(dir.path().join(".env"), "DATABASE_URL=sqlite://x.db\n").expect("write");
    let s = load(dir.path(), &Overrides::default(), &[]).expect("loads");
    assert!(s.notes[0].contains("(from .env)"), "{:?}", s.notes);
}

#[test]
fn files_are_found_from_a_subfolder_and_their_paths_are_theirs() {
    let root = tempfile::tempdir().expect("tempdir");
    let project = root.path().join("project");
    let deeper = project.join("crates/tool/src");
    std::fs::create_dir_all(&deeper).expect("mkdir");
    std::fs::write(project.join(".git"), "gitdir: elsewhere\n").expect("git");
    std::fs::write(
        project.join(CONFIG_FILE),
        "[default]\nauth_url = \"sqlite://data/auth.db\"\nbackup_dir = \"kept\"\n",
    )
    .expect("toml");
    std::fs::write(
        project.join(".env"),
        "APP_DATABASE_URL=sqlite://from-env.db\n",
    )
    .expect("env");

    let s = load(&deeper, &Overrides::default(), &[]).expect("found upward");
    assert_eq!(
        s.url_for("auth").expect("auth").sqlite_path(),
        Some(project.join("data/auth.db").as_path()),
        "relative to the file's folder"
    );
    assert_eq!(s.backup_dir, project.join("kept"));
    // The .env's value is the environment's kind: relative to where the command runs.
    assert_eq!(url(&s, "app"), "sqlite://from-env.db");
    assert_eq!(s.files, [project.join(CONFIG_FILE), project.join(".env")]);

    // Nothing above the project's root is read.
    std::fs::write(
        root.path().join(CONFIG_FILE),
        "[default]\nprotected = true\n",
    )
    .expect("toml");
    std::fs::remove_file(project.join(CONFIG_FILE)).expect("rm");
    let s = load(&deeper, &Overrides::default(), &[]).expect("loads");
    assert!(!s.protected, "a file above the project's root was read");
    assert_eq!(s.files, [project.join(".env")]);
}

#[test]
fn a_mistyped_value_is_an_error_even_when_the_environment_overrides_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(CONFIG_FILE), "[default]\nauth_url = 5\n").expect("toml");
    let err = load(
        dir.path(),
        &Overrides::default(),
        &[("AUTH_DATABASE_URL", "sqlite://x.db")],
    )
    .expect_err("auth_url = 5 is no URL");
    assert!(err.to_string().contains("auth_url"), "{err}");
}
