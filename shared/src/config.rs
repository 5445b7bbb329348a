//! Configuration, resolved in one place and one documented order (lowest first):
//!
//! 1. built-in defaults (the embedded SQLite pair under `.data/`);
//! 2. `orchestrator.toml` (or `--config FILE`), one table per profile; `[default]` applies
//!    to every profile and the selected profile's table overrides it;
//! 3. a `.env` file in the working directory (`AUTH_DATABASE_URL`, `APP_DATABASE_URL`,
//!    `ORCH_PROFILE`);
//! 4. the process environment, same variables;
//! 5. command-line flags.
//!
//! Unknown keys in the file are errors, as is a profile that the file does not define.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::{Figment, Profile as FigmentProfile, Provider};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::url::{printable, redact_in_text, DatabaseUrl};

pub const CONFIG_FILE: &str = "orchestrator.toml";
pub const DEFAULT_PROFILE: &str = "default";
pub const ENV_PROFILE: &str = "ORCH_PROFILE";
pub const ENV_AUTH_URL: &str = "AUTH_DATABASE_URL";
pub const ENV_APP_URL: &str = "APP_DATABASE_URL";
pub const ENV_LOCK_TIMEOUT: &str = "ORCH_LOCK_TIMEOUT_SECS";

/// One profile's settings, as written in `orchestrator.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSettings {
    pub auth_url: String,
    pub app_url: String,
    /// Destructive commands need `--confirm <database>` for each store of this profile.
    pub protected: bool,
    pub backup_dir: PathBuf,
    /// How long a run waits for another run's lock before giving up (exit 5).
    pub lock_timeout_secs: u64,
    /// The PostgreSQL schema each store lives in (`public`), whatever the connecting
    /// role's search_path says.
    pub auth_schema: String,
    pub app_schema: String,
}

impl Default for ProfileSettings {
    fn default() -> Self {
        ProfileSettings {
            auth_url: "sqlite://.data/auth.sqlite3".into(),
            app_url: "sqlite://.data/app.sqlite3".into(),
            protected: false,
            backup_dir: PathBuf::from(".data/backups"),
            lock_timeout_secs: 30,
            auth_schema: crate::url::DEFAULT_SCHEMA.into(),
            app_schema: crate::url::DEFAULT_SCHEMA.into(),
        }
    }
}

/// What the command line contributes; `None` leaves the lower layers in charge.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub profile: Option<String>,
    pub auth_url: Option<String>,
    pub app_url: Option<String>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub profile: String,
    pub auth_url: DatabaseUrl,
    pub app_url: DatabaseUrl,
    pub protected: bool,
    pub backup_dir: PathBuf,
    pub lock_timeout: Duration,
    /// Where each setting came from, for `-v` ("auth_url from environment", …).
    pub sources: Vec<(String, String)>,
}

impl Settings {
    /// Resolves the configuration for a run in `cwd`, reading the process environment.
    pub fn load(cwd: &Path, overrides: &Overrides) -> Result<Settings, ConfigError> {
        Self::load_with_env(cwd, overrides, &|key| std::env::var(key).ok())
    }

    /// Like [`Settings::load`], with the environment given as a function (for tests).
    ///
    /// Every error is one line, and any URL credentials it quotes from the input are
    /// masked.
    pub fn load_with_env(
        cwd: &Path,
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        Self::resolve(cwd, overrides, env).map_err(presentable)
    }

    fn resolve(
        cwd: &Path,
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let dotenv = read_dotenv(&cwd.join(".env"))?;
        let layered = |key: &str| -> Option<(String, &'static str)> {
            env(key)
                .filter(|v| !v.is_empty())
                .map(|v| (v, "environment"))
                .or_else(|| dotenv.get(key).cloned().map(|v| (v, ".env")))
        };

        let profile = overrides
            .profile
            .clone()
            .or_else(|| layered(ENV_PROFILE).map(|(v, _)| v))
            .unwrap_or_else(|| DEFAULT_PROFILE.to_string());
        if profile.trim().is_empty() {
            return Err(ConfigError::UnknownProfile {
                name: profile,
                known: "a profile name cannot be empty".into(),
            });
        }

        let file = match &overrides.config_file {
            Some(path) => {
                let path = cwd.join(path);
                if !path.is_file() {
                    return Err(ConfigError::MissingFile { path });
                }
                Some(path)
            }
            None => Some(cwd.join(CONFIG_FILE)).filter(|p| p.is_file()),
        };

        let mut figment = Figment::from(Serialized::defaults(ProfileSettings::default()));
        if let Some(path) = &file {
            let toml = Toml::file(path).nested();
            check_profile_exists(&toml, path, &profile)?;
            figment = figment.merge(toml);
        } else if profile != DEFAULT_PROFILE {
            return Err(ConfigError::UnknownProfile {
                name: profile,
                known: format!("no {CONFIG_FILE} defines profiles here"),
            });
        }
        figment = figment.select(profile.as_str());

        let mut globals: BTreeMap<&str, String> = BTreeMap::new();
        let mut sources = Vec::new();
        for (key, var, flag) in [
            ("auth_url", ENV_AUTH_URL, &overrides.auth_url),
            ("app_url", ENV_APP_URL, &overrides.app_url),
        ] {
            if let Some(value) = flag {
                globals.insert(key, value.clone());
                sources.push((key.to_string(), format!("--{}", key.replace('_', "-"))));
            } else if let Some((value, origin)) = layered(var) {
                globals.insert(key, value);
                sources.push((key.to_string(), format!("{origin} {var}")));
            }
        }
        figment = figment.merge(Serialized::globals(globals));
        if let Some((secs, origin)) = layered(ENV_LOCK_TIMEOUT) {
            let secs: u64 = secs.trim().parse().map_err(|_| {
                ConfigError::Invalid(format!(
                    "{ENV_LOCK_TIMEOUT} must be a whole number of seconds, got {secs:?}"
                ))
            })?;
            figment = figment.merge(Serialized::global("lock_timeout_secs", secs));
            sources.push((
                "lock_timeout_secs".into(),
                format!("{origin} {ENV_LOCK_TIMEOUT}"),
            ));
        }

        let raw: ProfileSettings = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(describe(e)))?;
        for key in [
            "auth_url",
            "app_url",
            "protected",
            "backup_dir",
            "lock_timeout_secs",
            "auth_schema",
            "app_schema",
        ] {
            if sources.iter().any(|(k, _)| k == key) {
                continue;
            }
            let origin = match figment.find_metadata(key) {
                Some(meta) if meta.name.contains("TOML") => {
                    format!("{} [{profile}]", file_name(file.as_deref()))
                }
                _ => "built-in default".to_string(),
            };
            sources.push((key.to_string(), origin));
        }

        if raw.lock_timeout_secs > crate::session::MAX_LOCK_TIMEOUT_SECS {
            let origin = sources
                .iter()
                .find(|(k, _)| k == "lock_timeout_secs")
                .map(|(_, v)| v.as_str())
                .unwrap_or("the configuration");
            return Err(ConfigError::Invalid(format!(
                "lock_timeout_secs = {} (from {origin}) is more than the server can take: at most {} \
                 (PostgreSQL keeps lock_timeout in milliseconds as a 32-bit number)",
                raw.lock_timeout_secs,
                crate::session::MAX_LOCK_TIMEOUT_SECS
            )));
        }
        for (key, schema) in [
            ("auth_schema", &raw.auth_schema),
            ("app_schema", &raw.app_schema),
        ] {
            if schema.trim().is_empty() || schema.contains('\0') {
                return Err(ConfigError::Invalid(format!(
                    "{key} must name a schema, got {schema:?}"
                )));
            }
        }
        Ok(Settings {
            auth_url: DatabaseUrl::parse(&raw.auth_url)?.with_schema(&raw.auth_schema),
            app_url: DatabaseUrl::parse(&raw.app_url)?.with_schema(&raw.app_schema),
            protected: raw.protected,
            backup_dir: raw.backup_dir,
            lock_timeout: Duration::from_secs(raw.lock_timeout_secs),
            profile,
            sources,
        })
    }

    /// The URL configured for a store (`auth` or `app`).
    pub fn url_for(&self, store: &str) -> Result<&DatabaseUrl, ConfigError> {
        match store {
            "auth" => Ok(&self.auth_url),
            "app" => Ok(&self.app_url),
            other => Err(ConfigError::UnknownStore(other.to_string())),
        }
    }
}

fn file_name(path: Option<&Path>) -> String {
    path.map(|p| p.display().to_string())
        .unwrap_or_else(|| CONFIG_FILE.to_string())
}

/// Figment's errors name the key and the file; keep all of them, on one line. A TOML
/// syntax error comes with a picture of the offending line (several lines of text,
/// quoting whatever secret the line holds): only its position and explanation are kept.
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            e.to_string()
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !is_source_excerpt(line))
                .collect::<Vec<_>>()
                .join(": ")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A line of a parser's source excerpt: `  |`, `3 | text` or `  |   ^^^`.
fn is_source_excerpt(line: &str) -> bool {
    let rest = line.trim_start_matches(|c: char| c.is_ascii_digit());
    rest.trim_start().starts_with('|')
}

/// The error as the user will read it: on one line, with URL credentials masked wherever
/// the input was quoted (a profile name, a key, a value in a parser's message).
fn presentable(error: ConfigError) -> ConfigError {
    let clean = |s: String| printable(&redact_in_text(&s));
    let clean_path = |p: PathBuf| {
        let shown = p.display().to_string();
        let cleaned = clean(shown.clone());
        if cleaned == shown {
            p
        } else {
            PathBuf::from(cleaned)
        }
    };
    match error {
        ConfigError::UnsupportedScheme { scheme, url } => ConfigError::UnsupportedScheme {
            scheme: clean(scheme),
            url: clean(url),
        },
        ConfigError::InvalidUrl { url, reason } => ConfigError::InvalidUrl {
            url: clean(url),
            reason: clean(reason),
        },
        ConfigError::MissingFile { path } => ConfigError::MissingFile {
            path: clean_path(path),
        },
        ConfigError::Unreadable { path, reason } => ConfigError::Unreadable {
            path: clean_path(path),
            reason: clean(reason),
        },
        ConfigError::UnknownProfile { name, known } => ConfigError::UnknownProfile {
            name: clean(name),
            known: clean(known),
        },
        ConfigError::Invalid(message) => ConfigError::Invalid(clean(message)),
        ConfigError::UnknownStore(name) => ConfigError::UnknownStore(clean(name)),
    }
}

fn check_profile_exists(
    toml: &impl Provider,
    path: &Path,
    profile: &str,
) -> Result<(), ConfigError> {
    let data = toml.data().map_err(|e| ConfigError::Invalid(describe(e)))?;
    let known: Vec<String> = data.keys().map(|p| p.as_str().to_string()).collect();
    if profile == DEFAULT_PROFILE || data.contains_key(&FigmentProfile::new(profile)) {
        return Ok(());
    }
    Err(ConfigError::UnknownProfile {
        name: profile.to_string(),
        known: if known.is_empty() {
            format!("{} defines no profiles", path.display())
        } else {
            format!("{} defines: {}", path.display(), known.join(", "))
        },
    })
}

/// Reads `.env` without touching the process environment. A missing file is no error; a
/// file that cannot be parsed is, and its message says which line without quoting it
/// (the line may hold a password).
fn read_dotenv(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    if !path.is_file() {
        return Ok(BTreeMap::new());
    }
    let unreadable = |reason: String| ConfigError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
    let mut values = BTreeMap::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        let (key, value) = item.map_err(|e| unreadable(dotenv_error(&text, &e)))?;
        values.insert(key, value);
    }
    Ok(values)
}

fn dotenv_error(text: &str, error: &dotenvy::Error) -> String {
    match error {
        dotenvy::Error::LineParse(line, at) => {
            let line_no = text
                .find(line.as_str())
                .filter(|_| !line.is_empty())
                .map(|start| text[..start].matches('\n').count() + 1);
            let place = match line_no {
                Some(n) => format!("line {n}"),
                None => "a line".to_string(),
            };
            format!(
                "{place} is not KEY=VALUE (error at character {}); quote values with spaces or `#`, and close every quote",
                at + 1
            )
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn load(
        dir: &Path,
        overrides: &Overrides,
        env: &[(&str, &str)],
    ) -> Result<Settings, ConfigError> {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_with_env(dir, overrides, &|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_embedded_pair() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s =
            Settings::load_with_env(dir.path(), &Overrides::default(), &no_env).expect("defaults");
        assert_eq!(s.auth_url.redacted(), "sqlite://.data/auth.sqlite3");
        assert_eq!(s.app_url.redacted(), "sqlite://.data/app.sqlite3");
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
        assert_eq!(s.auth_url.redacted(), "sqlite://file-default.db");

        let s = load(
            dir.path(),
            &Overrides::default(),
            &[(ENV_PROFILE, "production")],
        )
        .expect("profile");
        assert_eq!(s.auth_url.redacted(), "postgres://u@db.example.com/auth");
        assert_eq!(
            s.app_url.redacted(),
            "sqlite://file-app.db",
            "[default] applies to every profile"
        );
        assert!(s.protected);

        std::fs::write(
            dir.path().join(".env"),
            "AUTH_DATABASE_URL=sqlite://dotenv.db\nOTHER=1\n",
        )
        .expect("env");
        let s = load(dir.path(), &Overrides::default(), &[]).expect("dotenv");
        assert_eq!(s.auth_url.redacted(), "sqlite://dotenv.db");

        let s = load(
            dir.path(),
            &Overrides::default(),
            &[(ENV_AUTH_URL, "sqlite://env.db")],
        )
        .expect("env");
        assert_eq!(s.auth_url.redacted(), "sqlite://env.db");

        let flags = Overrides {
            auth_url: Some("sqlite://flag.db".into()),
            ..Overrides::default()
        };
        let s = load(dir.path(), &flags, &[(ENV_AUTH_URL, "sqlite://env.db")]).expect("flag");
        assert_eq!(s.auth_url.redacted(), "sqlite://flag.db");
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
            &[(ENV_APP_URL, "redis://h/0")],
        )
        .expect_err("bad scheme");
        assert!(
            matches!(err, ConfigError::UnsupportedScheme { .. }),
            "{err}"
        );
    }
}
