//! Property tests of the configuration and URL parsing: whatever a user types into a URL,
//! `orchestrator.toml` or `.env`, parsing never panics, errors stay on one line, and a
//! password never shows in anything printable (Display, Debug, JSON, errors).
//!
//! Each property runs 256 cases, so the file takes a few seconds in debug builds;
//! `ORCH_FUZZ_CASES=20000` searches deeper.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use shared::config::{ENV_LOCK_TIMEOUT, ENV_PROFILE};
use shared::{Backend, DatabaseUrl, Overrides, Settings};

const STORES: &[&str] = &["auth", "app"];
const ENV_AUTH_URL: &str = "AUTH_DATABASE_URL";
const ENV_APP_URL: &str = "APP_DATABASE_URL";

fn cases(n: u32) -> ProptestConfig {
    let cases = std::env::var("ORCH_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    ProptestConfig {
        cases,
        // Failures are kept next to this file (fuzz_config_and_urls.proptest-regressions)
        // and replayed first on every run.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Strategies

/// Pieces URLs are made of, and the characters that trip parsers up.
fn url_fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "postgres://", "postgresql://", "POSTGRES://", "sqlite://", "sqlite:", "mysql://",
            "redis://", "file:", "://", "@", ":", "/", "//", "?", "#", "&", "=", "%", "%2F",
            "%2f", "%00", "%zz", "%4", "%40", "%25", "+", "[", "]", "[::1]", "localhost",
            "127.0.0.1", "db.example.com", "5432", "99999", "-1", "host=/tmp", "password=",
            "sslmode=disable", "user", "pw", ".", "..", " ", "\t", "\n", "\u{0}", "é", "日本",
            "\u{202e}", "\u{feff}", "C:\\", "\\", "\"", "'", ";", "--",
        ])
        .prop_map(str::to_string),
        2 => "[a-z0-9_]{1,8}",
        1 => any::<char>().prop_map(String::from),
    ]
}

fn urlish() -> impl Strategy<Value = String> {
    prop::collection::vec(url_fragment(), 0..14).prop_map(|parts| parts.concat())
}

/// Passwords of at least 8 characters, with at least one character that needs
/// percent-encoding in a URL.
fn password() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '@', ':', '/', '?', '#', '%', '&', '=', '+', ' ', '"', '\'', '\\', ';', '[', ']', '{', '}',
        '<', '>', '|', '^', '`', '!', '$', '(', ')', '*', ',', 'é', '€', '日',
    ]);
    let ordinary = prop::sample::select(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
            .chars()
            .collect::<Vec<_>>(),
    );
    let any_char = prop_oneof![special.clone(), ordinary.clone()];
    (
        prop::collection::vec(any_char.clone(), 4..10),
        special,
        prop::collection::vec(any_char, 3..10),
    )
        .prop_map(|(a, s, b)| {
            let mut pw: String = a.into_iter().collect();
            pw.push(s);
            pw.extend(b);
            pw
        })
}

/// Every byte outside RFC 3986's unreserved set as `%XX`.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A well-formed PostgreSQL URL with a password, and its parts.
#[derive(Debug, Clone)]
struct PgUrl {
    scheme: &'static str,
    user: String,
    password: String,
    host: String,
    database: String,
    query: Option<&'static str>,
}

impl PgUrl {
    fn with_port(&self, port: &str) -> String {
        let mut url = format!(
            "{}://{}:{}@{}:{port}/{}",
            self.scheme,
            self.user,
            encode(&self.password),
            self.host,
            encode(&self.database)
        );
        if let Some(q) = self.query {
            url.push('?');
            url.push_str(q);
        }
        url
    }

    fn url(&self) -> String {
        self.with_port("5432")
    }

    /// The same URL with the password as typed, not encoded (a common mistake).
    fn raw_password_url(&self, port: &str) -> String {
        format!(
            "{}://{}:{}@{}:{port}/{}",
            self.scheme, self.user, self.password, self.host, self.database
        )
    }

    /// The forms in which this password must never be seen.
    fn secrets(&self) -> [String; 2] {
        [self.password.clone(), encode(&self.password)]
    }
}

fn pg_url() -> impl Strategy<Value = PgUrl> {
    (
        prop::sample::select(vec!["postgres", "postgresql"]),
        "[a-z][a-z0-9_]{0,7}",
        password(),
        prop::sample::select(vec!["localhost", "127.0.0.1", "db.example.com", "[::1]"]),
        "[A-Za-z][A-Za-z0-9_ +;'\"-]{0,12}",
        prop::sample::select(vec![
            None,
            Some("sslmode=disable"),
            Some("application_name=a%20b&connect_timeout=3"),
            Some("options=-c%20search_path%3Dx"),
        ]),
    )
        .prop_map(|(scheme, user, password, host, database, query)| PgUrl {
            scheme,
            user: user.to_string(),
            password,
            host: host.to_string(),
            database,
            query,
        })
        // A password that happens to be spelled out by the rest of the URL (or by our
        // messages) could not be told apart from a leak.
        .prop_filter("the password must be distinguishable", |u| {
            let rest = format!(
                "{}://{}:***@{}:5432/{} {}",
                u.scheme,
                u.user,
                u.host,
                u.database,
                u.query.unwrap_or("")
            );
            u.secrets().iter().all(|s| !rest.contains(s.as_str()))
        })
}

fn assert_hidden(shown: &str, url: &PgUrl, what: &str) -> Result<(), TestCaseError> {
    for secret in url.secrets() {
        prop_assert!(
            !shown.contains(secret.as_str()),
            "{what} shows the password {secret:?}: {shown}"
        );
    }
    Ok(())
}

/// Exercises everything a parsed URL offers; none of it may panic.
fn poke(url: &DatabaseUrl) -> String {
    let mut all = format!("{url} {url:?} {}", url.redacted());
    all.push_str(&url.without_password());
    all.push_str(&serde_json::to_string(url).unwrap_or_default());
    let _ = url.password();
    let _ = url.database_name();
    let _ = url.sqlite_path();
    let _ = url.is_local();
    let _ = url.expose_secret();
    if let Some(other) = url.with_database("postgres") {
        assert_eq!(other.database_name(), "postgres");
        assert_eq!(other.backend(), Backend::Postgres);
    }
    all
}

// ---------------------------------------------------------------------------------------
// URLs

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn parse_never_panics_on_arbitrary_strings(input in any::<String>()) {
        if let Ok(url) = DatabaseUrl::parse(&input) {
            poke(&url);
        }
    }

    #[test]
    fn parse_never_panics_on_urlish_strings(input in urlish()) {
        match DatabaseUrl::parse(&input) {
            Ok(url) => {
                poke(&url);
                if url.backend() == Backend::Postgres {
                    prop_assert!(!url.database_name().is_empty(), "{input:?}");
                    prop_assert!(!url.database_name().contains('\0'), "{input:?}");
                }
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg:?}");
            }
        }
    }

    #[test]
    fn passwords_never_show(url in pg_url()) {
        let text = url.url();
        let parsed = DatabaseUrl::parse(&text)
            .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(parsed.backend(), Backend::Postgres);
        // What libpq and PGPASSWORD get back is exactly what was encoded.
        prop_assert_eq!(parsed.password(), Some(url.password.clone()), "{}", text);
        prop_assert_eq!(parsed.database_name(), url.database.clone(), "{}", text);
        prop_assert_eq!(parsed.expose_secret(), text.as_str());

        for (what, shown) in [
            ("Display", parsed.to_string()),
            ("Debug", format!("{parsed:?}")),
            ("redacted()", parsed.redacted().to_string()),
            ("without_password()", parsed.without_password()),
            ("JSON", serde_json::to_string(&parsed).unwrap_or_default()),
        ] {
            assert_hidden(&shown, &url, what)?;
            prop_assert!(shown.contains(&url.user), "{} lost the user: {}", what, shown);
        }

        // The password-free form still names the same server, database and options.
        let bare = DatabaseUrl::parse(&parsed.without_password())
            .map_err(|e| TestCaseError::fail(format!("without_password(): {e}")))?;
        prop_assert_eq!(bare.password(), None);
        prop_assert_eq!(bare.database_name(), url.database.clone());
        if let Some(q) = url.query {
            prop_assert!(parsed.without_password().ends_with(q), "{}", parsed.without_password());
        }

        // Another database on the same server keeps the password for connecting only.
        let admin = parsed.with_database(&url.database).expect("postgres");
        prop_assert_eq!(admin.database_name(), url.database.clone());
        prop_assert_eq!(admin.password(), Some(url.password.clone()));
        assert_hidden(&admin.to_string(), &url, "with_database Display")?;
    }

    #[test]
    fn passwords_never_show_in_parse_errors(
        url in pg_url(),
        port in prop::sample::select(vec!["99999", "x1", "-5", "5432x", "65536"]),
    ) {
        for text in [url.with_port(port), url.raw_password_url(port)] {
            match DatabaseUrl::parse(&text) {
                Err(e) => {
                    assert_hidden(&e.to_string(), &url, "parse error")?;
                    assert_hidden(&format!("{e:?}"), &url, "parse error (Debug)")?;
                }
                // The raw form can mean another URL altogether (a `/` in the password
                // starts the path); what it means then is the user's, not a leak.
                Ok(parsed) => prop_assert!(text != url.with_port(port), "{parsed:?}"),
            }
        }
        // A scheme we do not support is refused without echoing the password either.
        let mysql = url.url().replacen(url.scheme, "mysql", 1);
        match DatabaseUrl::parse(&mysql) {
            Ok(parsed) => prop_assert!(false, "mysql accepted: {parsed:?}"),
            Err(e) => assert_hidden(&e.to_string(), &url, "unsupported scheme error")?,
        }
        // A mistyped separator (`postgres:/`, `postgres //`, none at all) is refused or
        // taken as something else, never shown with the password.
        let rest = url.url().split_once("://").map(|x| x.1).unwrap_or_default().to_string();
        for typo in [format!("postgres:/{rest}"), format!("postgres //{rest}"), rest.clone()] {
            match DatabaseUrl::parse(&typo) {
                Err(e) => assert_hidden(&e.to_string(), &url, "mistyped scheme error")?,
                Ok(p) => assert_hidden(&p.to_string(), &url, "mistyped scheme taken as")?,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Configuration files

/// A line of `orchestrator.toml`: well-formed, mistyped or broken, often with a URL that
/// carries a password.
fn toml_line(url: String) -> impl Strategy<Value = String> {
    let quoted = format!("{url:?}");
    let single = format!("'{url}'");
    prop_oneof![
        Just("[default]".to_string()),
        Just("[production]".to_string()),
        Just("[default".to_string()),
        Just(format!("[{quoted}]")),
        Just(format!("auth_url = {quoted}")),
        Just(format!("app_url = {single}")),
        Just(format!("auth_url = {url}")),
        Just(format!("auth_url = \"{url}")),
        Just(format!("app_url = \"\"\"{url}")),
        Just(format!("auth_url = [{quoted}]")),
        Just(format!("auth_url = {{ x = {quoted} }}")),
        Just(format!("protected = {quoted}")),
        Just(format!("backup_dir = {quoted}")),
        Just(format!("lock_timeout_secs = {quoted}")),
        Just(format!("auth_ur = {quoted}")),
        Just(format!("{quoted} = 1")),
        Just(format!("{quoted} = {quoted}")),
        Just(format!("auth_url = {quoted}\nauth_url = {quoted}")),
        Just("protected = true".to_string()),
        Just("protected = 1".to_string()),
        Just("lock_timeout_secs = -1".to_string()),
        Just("lock_timeout_secs = 1e400".to_string()),
        Just("auth_url = \"mysql://root@h/x\"".to_string()),
        Just("app_url = \"postgres://u@h/\"".to_string()),
        Just("app_url = \"postgres://u@h/a%00b\"".to_string()),
        Just("auth_url = \"\"".to_string()),
        Just("app_url = \"sqlite://\"".to_string()),
        urlish(),
        any::<String>(),
    ]
}

/// A line of `.env`, likewise.
fn dotenv_line(url: String) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(format!("{ENV_AUTH_URL}={url}")),
        Just(format!("{ENV_APP_URL}=\"{url}\"")),
        Just(format!("{ENV_APP_URL}='{url}")),
        Just(format!("{ENV_AUTH_URL}=\"{url}")),
        Just(format!("export {ENV_AUTH_URL}={url}")),
        Just(format!("{ENV_PROFILE}={url}")),
        Just(format!("{ENV_LOCK_TIMEOUT}={url}")),
        Just(url.clone()),
        Just(format!("{url}={url}")),
        Just(format!("X=${{{url}}}")),
        Just(format!("# {url}")),
        Just(format!("{ENV_PROFILE}=production")),
        Just(format!("{ENV_LOCK_TIMEOUT}=abc")),
        Just(format!("{ENV_LOCK_TIMEOUT}=5")),
        Just(format!("{ENV_APP_URL}=redis://h/0")),
        urlish(),
        any::<String>(),
    ]
}

fn lines_with_urls<S, F>(line: F) -> impl Strategy<Value = (Vec<PgUrl>, String)>
where
    S: Strategy<Value = String> + 'static,
    F: Fn(String) -> S + Copy + 'static,
{
    prop::collection::vec(pg_url(), 1..3).prop_flat_map(move |urls| {
        let per_url: Vec<_> = urls
            .iter()
            .map(|u| prop::collection::vec(line(u.url()), 0..4))
            .collect();
        (Just(urls), per_url, prop::bool::ANY).prop_map(|(urls, groups, crlf)| {
            let nl = if crlf { "\r\n" } else { "\n" };
            let text = groups.concat().join(nl);
            (urls, text)
        })
    })
}

struct Outcome {
    result: Result<Settings, shared::ConfigError>,
}

fn load(
    toml: Option<&str>,
    dotenv: Option<&str>,
    env: &BTreeMap<String, String>,
    overrides: &Overrides,
) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    if let Some(toml) = toml {
        std::fs::write(dir.path().join("orchestrator.toml"), toml).expect("write toml");
    }
    if let Some(dotenv) = dotenv {
        std::fs::write(dir.path().join(".env"), dotenv).expect("write .env");
    }
    let result = Settings::load_with_env(dir.path(), STORES, overrides, &|k| env.get(k).cloned());
    Outcome { result }
}

fn check(outcome: &Outcome, urls: &[PgUrl]) -> Result<(), TestCaseError> {
    match &outcome.result {
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(
                !msg.contains('\n') && !msg.contains('\r'),
                "the error spans lines: {msg:?}"
            );
            prop_assert!(!msg.trim().is_empty());
            for url in urls {
                assert_hidden(&msg, url, "configuration error")?;
                assert_hidden(&format!("{e:?}"), url, "configuration error (Debug)")?;
            }
        }
        Ok(settings) => {
            for url in urls {
                for shown in [
                    settings.urls[0].1.to_string(),
                    settings.urls[1].1.to_string(),
                    format!("{:?} {:?}", settings.urls[0].1, settings.urls[1].1),
                    format!("{:?}", settings.sources),
                ] {
                    assert_hidden(&shown, url, "settings")?;
                }
            }
        }
    }
    Ok(())
}

fn env_strategy() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        prop::sample::select(vec![
            ENV_AUTH_URL,
            ENV_APP_URL,
            ENV_PROFILE,
            ENV_LOCK_TIMEOUT,
        ])
        .prop_map(str::to_string),
        prop_oneof![
            urlish(),
            Just(String::new()),
            Just("production".to_string())
        ],
        0..3,
    )
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn arbitrary_config_files_never_panic(
        toml in prop_oneof![any::<String>(), urlish()],
        dotenv in prop::option::of(prop_oneof![any::<String>(), urlish()]),
        env in env_strategy(),
    ) {
        let outcome = load(Some(&toml), dotenv.as_deref(), &env, &Overrides::default());
        check(&outcome, &[])?;
    }

    #[test]
    fn config_errors_are_one_line_and_hide_passwords(
        (urls, toml) in lines_with_urls(toml_line),
        (dotenv_urls, dotenv) in lines_with_urls(dotenv_line),
        with_dotenv in prop::bool::ANY,
        env in env_strategy(),
        profile in prop::option::of(prop_oneof![
            Just("production".to_string()),
            Just("staging".to_string()),
            Just(String::new()),
            Just("a\nb".to_string()),
        ]),
    ) {
        let overrides = Overrides { profile, ..Overrides::default() };
        let dotenv = with_dotenv.then_some(dotenv.as_str());
        let outcome = load(Some(&toml), dotenv, &env, &overrides);
        let mut all = urls;
        all.extend(dotenv_urls);
        check(&outcome, &all)?;
    }

    #[test]
    fn urls_from_the_environment_and_flags_hide_passwords(
        url in pg_url(),
        port in prop::sample::select(vec!["5432", "99999", "x"]),
        slot in 0..4usize,
    ) {
        let text = url.with_port(port);
        let mut env = BTreeMap::new();
        let mut overrides = Overrides::default();
        match slot {
            0 => { env.insert(ENV_AUTH_URL.to_string(), text); }
            1 => { env.insert(ENV_PROFILE.to_string(), text); }
            2 => { env.insert(ENV_LOCK_TIMEOUT.to_string(), text); }
            _ => overrides = overrides.with_url("app", text),
        }
        let outcome = load(None, None, &env, &overrides);
        check(&outcome, &[url])?;
    }
}
