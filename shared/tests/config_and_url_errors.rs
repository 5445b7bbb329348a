//! What the configuration and URL properties (`fuzz_config_and_urls.rs`) found, pinned as
//! plain tests: each failed before its fix. Errors stay on one line and never show a
//! password.

use std::collections::BTreeMap;

use shared::{DatabaseUrl, Overrides, Settings};

/// The error loading this configuration gives.
fn load_error(toml: Option<&str>, dotenv: Option<&str>, env: &[(&str, &str)]) -> String {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    if let Some(toml) = toml {
        std::fs::write(dir.path().join("orchestrator.toml"), toml).expect("write toml");
    }
    if let Some(dotenv) = dotenv {
        std::fs::write(dir.path().join(".env"), dotenv).expect("write .env");
    }
    match Settings::load_with_env(dir.path(), &["auth", "app"], &Overrides::default(), &|k| {
        env.get(k).cloned()
    }) {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e.to_string(),
    }
}

const SECRET_URL: &str = "postgres://alice:s3cr%40t-pw@localhost:5432/app";

fn assert_clean(msg: &str) {
    assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg:?}");
    assert!(!msg.contains("s3cr"), "{msg}");
}

#[test]
fn toml_syntax_errors_fit_on_one_line_without_the_source_line() {
    let msg = load_error(Some("\u{10cfa}"), None, &[]);
    assert_clean(&msg);
    assert!(msg.contains("line 1, column 1"), "{msg}");

    let msg = load_error(
        Some(&format!(
            "[default]\nauth_url = \"{SECRET_URL}\nprotected = true\n"
        )),
        None,
        &[],
    );
    assert_clean(&msg);
    assert!(msg.contains("line 2"), "{msg}");

    // A value of the wrong type is quoted by the parser: its credentials are masked.
    let msg = load_error(Some(&format!("protected = \"{SECRET_URL}\"")), None, &[]);
    assert_clean(&msg);
    let msg = load_error(
        Some(&format!("[default]\nprotected = \"{SECRET_URL}\"")),
        None,
        &[],
    );
    assert_clean(&msg);
    assert!(msg.contains("protected") && msg.contains("alice"), "{msg}");
}

#[test]
fn names_quoted_from_the_input_are_masked() {
    // A URL in ORCH_PROFILE (a variable mixed up) is named in the error, masked.
    let msg = load_error(None, None, &[("ORCH_PROFILE", SECRET_URL)]);
    assert_clean(&msg);
    assert!(msg.contains("unknown profile"), "{msg}");
    // A URL as a key or a table name.
    let msg = load_error(Some(&format!("[default]\n\"{SECRET_URL}\" = 1")), None, &[]);
    assert_clean(&msg);
    let msg = load_error(
        Some(&format!("[\"{SECRET_URL}\"]\nprotected = true")),
        None,
        &[("ORCH_PROFILE", "production")],
    );
    assert_clean(&msg);
    let msg = load_error(None, None, &[("ORCH_LOCK_TIMEOUT_SECS", SECRET_URL)]);
    assert_clean(&msg);
    // A profile name with a line break is shown escaped.
    let dir = tempfile::tempdir().expect("tempdir");
    let overrides = Overrides {
        profile: Some("prod\nuction".into()),
        ..Overrides::default()
    };
    let err = Settings::load_with_env(dir.path(), &["auth", "app"], &overrides, &|_| None)
        .expect_err("unknown");
    assert!(err.to_string().contains("prod\\nuction"), "{err}");
}

#[test]
fn dotenv_errors_name_the_line_without_quoting_it() {
    let msg = load_error(
        None,
        Some(&format!("OTHER=1\nAPP_DATABASE_URL=\"{SECRET_URL}\nX=1\n")),
        &[],
    );
    assert_clean(&msg);
    assert!(msg.contains(".env") && msg.contains("line 2"), "{msg}");

    // An unclosed quote swallows the next lines into the value; the URL it makes is
    // refused (libpq would read the line breaks, the URL parser drops them).
    let msg = load_error(
        None,
        Some(&format!(
            "AUTH_DATABASE_URL=\"{SECRET_URL}\n# {SECRET_URL}\n\"\n"
        )),
        &[],
    );
    assert_clean(&msg);
}

#[test]
fn urls_found_by_the_properties() {
    // Display kept a #fragment holding another URL; fragments are refused now.
    let err = DatabaseUrl::parse(&format!("{SECRET_URL}#{SECRET_URL}")).expect_err("fragment");
    assert_clean(&err.to_string());
    // A password typed without encoding, whose `#` made the parser see a fragment.
    let err = DatabaseUrl::parse("postgres://a:0#s3cr@@@@localhost:99999/A").expect_err("port");
    assert_clean(&err.to_string());
    // Line breaks in an unsupported URL.
    let err = DatabaseUrl::parse("mysql://a\npostgres://").expect_err("mysql");
    assert_clean(&err.to_string());
    // A query value holding another URL's credentials is masked when shown.
    let url = DatabaseUrl::parse(&format!(
        "postgres://u@h/db?sslmode=disable&application_name={SECRET_URL}"
    ))
    .expect("url");
    assert_clean(&url.to_string());
    assert!(url.to_string().contains("sslmode=disable"), "{url}");
    // A URL-looking bare path is not a SQLite file.
    let err = DatabaseUrl::parse(&format!("postgres {SECRET_URL}")).expect_err("typo");
    assert_clean(&err.to_string());
}

#[test]
fn percent_encoding_round_trips_as_libpq_reads_it() {
    // `+` is a plus sign in a connection URI (form encoding would make it a space).
    let url =
        DatabaseUrl::parse("postgres://u:a+b%2Bc@h/x+y%20z?application_name=a%20b").expect("url");
    assert_eq!(url.password().as_deref(), Some("a+b+c"));
    assert_eq!(url.database_name(), "x+y z");
    // The rest of the URL reaches pg_dump byte for byte.
    assert_eq!(
        url.without_password(),
        "postgres://u@h/x+y%20z?application_name=a%20b"
    );
    // Another database by name, whatever its characters.
    for name in [
        "a%41b",
        "a/b",
        "a?b#c",
        "x\"; DROP DATABASE postgres; --",
        "é 日",
    ] {
        let other = url.with_database(name).expect("postgres");
        assert_eq!(other.database_name(), name);
        assert_eq!(other.password().as_deref(), Some("a+b+c"));
    }
    // A password given as a query parameter still reaches PGPASSWORD, since
    // without_password() drops it from the command line.
    let url =
        DatabaseUrl::parse("postgres://u@h/db?sslmode=disable&password=p%2Bw+x%26").expect("url");
    assert_eq!(url.password().as_deref(), Some("p+w+x&"));
    assert_eq!(url.without_password(), "postgres://u@h/db?sslmode=disable");
    assert!(!url.to_string().contains("p%2B"), "{url}");
    // NUL bytes cannot name anything: a configuration error, not a connection error.
    for bad in [
        "postgres://u@h/a%00b",
        "postgres://u:p%00@h/db",
        "x\u{0}.db",
    ] {
        let err = DatabaseUrl::parse(bad).expect_err(bad);
        assert!(err.to_string().contains("NUL"), "{err}");
    }
}
