//! Parsing, redaction and locality of database URLs.
use super::*;

#[test]
fn the_endpoint_is_explicit_only_when_no_parameter_overrides_it() {
    let endpoint = |u: &str| DatabaseUrl::parse(u).expect("url").explicit_tcp_endpoint();
    assert_eq!(
        endpoint("postgres://u@127.0.0.1/db"),
        Some(("127.0.0.1".into(), 5432))
    );
    assert_eq!(
        endpoint("postgres://u@[::1]:6432/db"),
        Some(("::1".into(), 6432))
    );
    assert_eq!(endpoint("postgres://u@localhost/db?host=192.0.2.2"), None);
    assert_eq!(
        endpoint("postgres://u@localhost/db?hostaddr=192.0.2.2"),
        None
    );
    assert_eq!(endpoint("postgres://u@localhost/db?service=prod"), None);
    assert_eq!(endpoint("postgres:///db"), None);
    assert_eq!(endpoint("sqlite://x.db"), None);
}

#[test]
fn postgres_schemes_choose_postgres() {
    for url in [
        "postgres://u@localhost/db",
        "postgresql://u@localhost:5433/db",
        "POSTGRES://h/db",
    ] {
        let parsed = DatabaseUrl::parse(url).expect(url);
        assert_eq!(parsed.backend(), Backend::Postgres, "{url}");
    }
}

#[test]
fn sqlite_urls_and_bare_paths_choose_sqlite() {
    let cases = [
        ("sqlite://.data/auth.sqlite3", ".data/auth.sqlite3"),
        ("sqlite:///tmp/x.db", "/tmp/x.db"),
        ("sqlite:rel.db", "rel.db"),
        ("./a/b.sqlite3", "./a/b.sqlite3"),
        ("/abs/c.db", "/abs/c.db"),
    ];
    for (url, path) in cases {
        let parsed = DatabaseUrl::parse(url).expect(url);
        assert_eq!(parsed.backend(), Backend::Sqlite, "{url}");
        assert_eq!(parsed.sqlite_path(), Some(Path::new(path)), "{url}");
    }
    assert_eq!(
        DatabaseUrl::parse("sqlite://.data/auth.sqlite3")
            .expect("url")
            .database_name(),
        "auth"
    );
}

#[test]
fn other_schemes_are_rejected_naming_what_is_supported() {
    let err = DatabaseUrl::parse("mysql://root:hunter2@db/x").expect_err("mysql must be refused");
    let msg = err.to_string();
    assert!(msg.contains("mysql"), "{msg}");
    assert!(
        msg.contains("postgres://") && msg.contains("sqlite://"),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn a_server_url_that_lost_its_colon_is_not_taken_for_a_file() {
    for input in ["postgres //u:hunter2@h/db", "u:hunter2@h/db"] {
        let msg = DatabaseUrl::parse(input).expect_err(input).to_string();
        assert!(msg.contains("mistyped scheme"), "{input}: {msg}");
        assert!(!msg.contains("hunter2"), "{input}: {msg}");
    }
    // One slash short: a postgres URL without a host, refused without its password.
    let msg = DatabaseUrl::parse("postgres:/u:hunter2@h/db")
        .expect_err("no host")
        .to_string();
    assert!(!msg.contains("hunter2"), "{msg}");
    // A file whose name merely holds `@` or `:` is still a file.
    for input in ["backups/at@home.sqlite3", "C:dir/x.db", "./a:b/x.db"] {
        assert!(DatabaseUrl::parse(input).is_ok(), "{input}");
    }
}

#[test]
fn empty_url_and_url_without_database_are_errors() {
    assert!(DatabaseUrl::parse("").is_err());
    assert!(DatabaseUrl::parse("postgres://u@localhost").is_err());
    assert!(DatabaseUrl::parse("postgres://u@localhost/").is_err());
    assert!(DatabaseUrl::parse("sqlite://").is_err());
}

#[test]
fn password_never_shows_in_debug_display_or_json() {
    let url =
        DatabaseUrl::parse("postgres://alice:s3cr%40t@db.example.com:5432/prod?password=other")
            .expect("valid url");
    for shown in [
        format!("{url}"),
        format!("{url:?}"),
        serde_json::to_string(&url).expect("json"),
    ] {
        assert!(!shown.contains("s3cr"), "{shown}");
        assert!(!shown.contains("other"), "{shown}");
        assert!(shown.contains("alice"), "{shown}");
        assert!(shown.contains("db.example.com"), "{shown}");
    }
    assert!(url.expose_secret().contains("s3cr%40t"));
}

#[test]
fn unparsable_urls_are_redacted_too() {
    assert_eq!(
        redact_unparsed("postgres://bob:pw@[bad/x"),
        "postgres://bob:***@[bad/x"
    );
    assert_eq!(redact_unparsed("postgres://bob@h/x"), "postgres://bob@h/x");
    let err = DatabaseUrl::parse("postgres://bob:pw@[bad/x").expect_err("bad host");
    assert!(!err.to_string().contains(":pw@"), "{err}");
}

#[test]
fn locality_follows_the_host() {
    let local = [
        "postgres://u@localhost/d",
        "postgres://u@127.0.0.1/d",
        "postgres://u@[::1]/d",
        "postgres:///d?host=/var/run/postgresql",
        "sqlite://x.db",
    ];
    for url in local {
        assert!(DatabaseUrl::parse(url).expect(url).is_local(), "{url}");
    }
    for url in ["postgres://u@db.example.com/d", "postgres://u@10.0.0.5/d"] {
        assert!(!DatabaseUrl::parse(url).expect(url).is_local(), "{url}");
    }
}

#[test]
fn password_is_split_off_for_child_processes() {
    let url =
        DatabaseUrl::parse("postgres://u:p%40ss@localhost:5432/app?sslmode=disable&password=x")
            .expect("url");
    // libpq reads the query's `password=` over the user part's (PQconninfoParse says
    // so): the child gets the one the tool itself logs in with.
    assert_eq!(url.password().as_deref(), Some("x"));
    assert_eq!(
        url.without_password(),
        "postgres://u@localhost:5432/app?sslmode=disable"
    );
}

#[test]
fn with_database_keeps_credentials_and_host() {
    let url = DatabaseUrl::parse("postgres://u:p@localhost:5432/app").expect("url");
    let admin = url.with_database("postgres").expect("postgres url");
    assert_eq!(admin.database_name(), "postgres");
    assert_eq!(
        admin.expose_secret(),
        "postgres://u:p@localhost:5432/postgres"
    );
}

#[test]
fn in_memory_sqlite_is_refused_a_store_must_persist() {
    for url in [
        "sqlite::memory:",
        ":memory:",
        "sqlite://:memory:",
        "sqlite://file::memory:?cache=shared",
        "sqlite://file:x?mode=memory",
    ] {
        let err = DatabaseUrl::parse(url).expect_err(url).to_string();
        assert!(err.contains("must persist"), "{url}: {err}");
    }
}

#[test]
fn a_leading_tilde_is_the_home_folder() {
    let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else {
        return;
    };
    let home = std::path::PathBuf::from(home);
    for (url, expected) in [
        ("sqlite://~/auth.db", home.join("auth.db")),
        ("~/data/app.sqlite3", home.join("data/app.sqlite3")),
        ("sqlite://~", home.clone()),
        // Another user's home is not ours to guess; left as written.
        ("sqlite://~bob/x.db", std::path::PathBuf::from("~bob/x.db")),
    ] {
        let parsed = DatabaseUrl::parse(url).expect(url);
        assert_eq!(parsed.sqlite_path(), Some(expected.as_path()), "{url}");
    }
}

#[test]
fn the_password_is_the_one_libpq_uses() {
    let password = |u: &str| DatabaseUrl::parse(u).expect(u).password();
    assert_eq!(password("postgres://u:abc@h/db").as_deref(), Some("abc"));
    assert_eq!(
        password("postgres://u:abc@h/db?password=xyz").as_deref(),
        Some("xyz")
    );
    assert_eq!(
        password("postgres://u:abc@h/db?password=xyz&password=zzz").as_deref(),
        Some("zzz")
    );
    assert_eq!(
        password("postgres://u@h/db?password=q%26r").as_deref(),
        Some("q&r")
    );
    assert_eq!(password("postgres://u@h/db"), None);
}

#[test]
fn a_socket_folder_with_no_host_in_the_authority_is_accepted() {
    let url = DatabaseUrl::parse("postgres://app:p%40ss@/auth?host=/var/run/postgresql&port=5433")
        .expect("a URL libpq takes");
    assert_eq!(url.backend(), Backend::Postgres);
    assert_eq!(url.database_name(), "auth");
    assert_eq!(url.password().as_deref(), Some("p@ss"));
    assert!(!url.redacted().contains("p@ss") && !url.redacted().contains("p%40ss"));
    assert!(
        !url.without_password().contains("p%40ss"),
        "{}",
        url.without_password()
    );
    assert!(url.without_password().contains("host=/var/run/postgresql"));
    // Without a password, and with a later user= in the query (which libpq would take).
    let url = DatabaseUrl::parse("postgresql://app@/auth?host=/tmp").expect("url");
    assert_eq!(url.database_name(), "auth");
    assert_eq!(url.expose_secret(), "postgresql:///auth?user=app&host=/tmp");
}
