//! Configuration, resolved in one place and one documented order (lowest first):
//!
//! 1. built-in defaults (each store's embedded SQLite file, `.data/<store>.sqlite3`);
//! 2. `orchestrator.toml` (or `--config FILE`), one table per profile; `[default]` applies
//!    to every profile and the selected profile's table overrides it;
//! 3. a `.env` file in the working directory (`<STORE>_DATABASE_URL`, `ORCH_PROFILE`,
//!    `ORCH_LOCK_TIMEOUT_SECS`);
//! 4. the process environment, same variables;
//! 5. command-line flags.
//!
//! Which stores there are is the caller's: every per-store key (`<store>_url`,
//! `<store>_schema`, `<STORE>_DATABASE_URL`) is derived from the names it passes, so a new
//! store needs nothing here. Unknown keys in the file are errors, as is a profile that the
//! file does not define.

mod dotenv;
mod files;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::{Figment, Profile as FigmentProfile, Provider};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::url::{printable, redact_in_text, DatabaseUrl};
use dotenv::read_dotenv;

pub const CONFIG_FILE: &str = "orchestrator.toml";
pub const DEFAULT_PROFILE: &str = "default";
pub const ENV_PROFILE: &str = "ORCH_PROFILE";
pub const ENV_LOCK_TIMEOUT: &str = "ORCH_LOCK_TIMEOUT_SECS";
/// The one URL variable diesel and sqlx read; it names no store, so it is mentioned, not read.
pub const IGNORED_DATABASE_URL: &str = "DATABASE_URL";

/// The profile key of a store's URL: `auth_url`.
pub fn url_key(store: &str) -> String {
    format!("{}_url", store.replace('-', "_"))
}

/// The profile key of a store's PostgreSQL schema: `auth_schema`.
pub fn schema_key(store: &str) -> String {
    format!("{}_schema", store.replace('-', "_"))
}

/// The environment variable of a store's URL: `AUTH_DATABASE_URL`.
pub fn env_var(store: &str) -> String {
    format!(
        "{}_DATABASE_URL",
        store.to_ascii_uppercase().replace('-', "_")
    )
}

/// Where a store lives when nothing is configured: its own SQLite file under `.data/`.
pub fn default_url(store: &str) -> String {
    format!("sqlite://.data/{store}.sqlite3")
}

/// The settings of a profile that are not per store, as written in `orchestrator.toml`
/// (the per-store keys are read by name, see [`url_key`] and [`schema_key`]).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CommonSettings {
    /// Destructive commands need `--confirm <database>` for each store of this profile.
    pub protected: bool,
    pub backup_dir: PathBuf,
    /// How long a run waits for another run's lock before giving up (exit 5).
    pub lock_timeout_secs: u64,
}

const COMMON_KEYS: [&str; 3] = ["protected", "backup_dir", "lock_timeout_secs"];

impl Default for CommonSettings {
    fn default() -> Self {
        CommonSettings {
            protected: false,
            backup_dir: PathBuf::from(".data/backups"),
            lock_timeout_secs: crate::session::DEFAULT_LOCK_TIMEOUT_SECS,
        }
    }
}

/// What the command line contributes; `None` or nothing leaves the lower layers in charge.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub profile: Option<String>,
    pub urls: Vec<GivenUrl>,
}

/// A URL given on the command line for one store.
#[derive(Debug, Clone)]
pub struct GivenUrl {
    pub store: String,
    pub url: String,
    /// The flag that gave it, for `-v` (`--auth-url`, `--url auth=`).
    pub flag: String,
}

impl Overrides {
    /// A URL for `store` from the flag `--<store>-url`.
    pub fn with_url(mut self, store: &str, url: impl Into<String>) -> Self {
        let flag = format!("--{}", url_key(store).replace('_', "-"));
        self.urls.push(GivenUrl {
            store: store.to_string(),
            url: url.into(),
            flag,
        });
        self
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub profile: String,
    /// Each store's URL (its schema set), in the order the stores were given.
    pub urls: Vec<(String, DatabaseUrl)>,
    pub protected: bool,
    pub backup_dir: PathBuf,
    pub lock_timeout: Duration,
    /// Where each setting came from, for `-v` ("auth_url from environment", …).
    pub sources: Vec<(String, String)>,
    /// The configuration files read (`orchestrator.toml`, `.env`), for `-vv`.
    pub files: Vec<PathBuf>,
    /// What the run should mention once on stderr: settings it found and does not read
    /// (a `DATABASE_URL`, which diesel and sqlx read, names no store).
    pub notes: Vec<String>,
}

impl Settings {
    /// Resolves the configuration of `stores` for a run in `cwd`, reading the process
    /// environment.
    pub fn load(
        cwd: &Path,
        stores: &[&str],
        overrides: &Overrides,
    ) -> Result<Settings, ConfigError> {
        Self::load_with_env(cwd, stores, overrides, &|key| std::env::var(key).ok())
    }

    /// Like [`Settings::load`], with the environment given as a function (for tests).
    ///
    /// Every error is one line, and any URL credentials it quotes from the input are
    /// masked.
    pub fn load_with_env(
        cwd: &Path,
        stores: &[&str],
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        Self::resolve(cwd, stores, overrides, env).map_err(presentable)
    }

    fn resolve(
        cwd: &Path,
        stores: &[&str],
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let dotenv_file = files::find_upward(cwd, ".env");
        let dotenv = match &dotenv_file {
            Some(path) => read_dotenv(path)?,
            None => BTreeMap::new(),
        };
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
            None => files::find_upward(cwd, CONFIG_FILE),
        };
        let file_dir = file
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf);

        let store_defaults: BTreeMap<String, String> = stores
            .iter()
            .flat_map(|s| {
                [
                    (url_key(s), default_url(s)),
                    (schema_key(s), crate::url::DEFAULT_SCHEMA.to_string()),
                ]
            })
            .collect();
        let mut figment = Figment::from(Serialized::defaults(CommonSettings::default()))
            .merge(Serialized::defaults(store_defaults));
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
        // The file's own values have the types they need, even those the environment or a
        // flag overrides below (a mistyped `auth_url = 5` is an error, not hidden).
        check_types(&figment, stores)?;

        let mut globals: BTreeMap<String, String> = BTreeMap::new();
        let mut sources = Vec::new();
        for GivenUrl { store, url, flag } in &overrides.urls {
            if !stores.contains(&store.as_str()) {
                return Err(ConfigError::UnknownStore(store.clone()));
            }
            let key = url_key(store);
            if globals.get(&key).is_some_and(|given| given != url) {
                return Err(ConfigError::Invalid(format!(
                    "two different URLs were given for the {store} store on the command line"
                )));
            }
            globals.insert(key.clone(), url.clone());
            sources.retain(|(k, _)| *k != key);
            sources.push((key, flag.clone()));
        }
        for store in stores {
            let (key, var) = (url_key(store), env_var(store));
            if globals.contains_key(&key) {
                continue;
            }
            if let Some((value, origin)) = layered(&var) {
                globals.insert(key.clone(), value);
                sources.push((key, format!("{origin} {var}")));
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

        let mut keys: Vec<String> = COMMON_KEYS.iter().map(|k| k.to_string()).collect();
        for store in stores {
            keys.push(url_key(store));
            keys.push(schema_key(store));
        }
        check_known_keys(&figment, &keys, &profile, file.as_deref())?;
        let common: CommonSettings = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(describe(e)))?;
        for key in &keys {
            if sources.iter().any(|(k, _)| k == key) {
                continue;
            }
            let origin = match figment.find_metadata(key) {
                Some(meta) if meta.name.contains("TOML") => {
                    format!("{} [{profile}]", file_name(file.as_deref()))
                }
                _ => "built-in default".to_string(),
            };
            sources.push((key.clone(), origin));
        }

        if common.lock_timeout_secs > crate::session::MAX_LOCK_TIMEOUT_SECS {
            let origin = sources
                .iter()
                .find(|(k, _)| k == "lock_timeout_secs")
                .map(|(_, v)| v.as_str())
                .unwrap_or("the configuration");
            return Err(ConfigError::Invalid(format!(
                "lock_timeout_secs = {} (from {origin}) is more than the server can take: at most {} \
                 (PostgreSQL keeps lock_timeout in milliseconds as a 32-bit number)",
                common.lock_timeout_secs,
                crate::session::MAX_LOCK_TIMEOUT_SECS
            )));
        }
        let text = |key: &str| -> Result<String, ConfigError> {
            figment
                .extract_inner::<String>(key)
                .map_err(|e| ConfigError::Invalid(describe(e)))
        };
        let mut notes = Vec::new();
        if let Some((_, origin)) = layered(IGNORED_DATABASE_URL) {
            let vars: Vec<String> = stores.iter().map(|s| env_var(s)).collect();
            notes.push(format!(
                "{IGNORED_DATABASE_URL} (from {origin}) is not read: each store has a URL of its \
                 own ({}, or --url STORE=URL)",
                vars.join(", ")
            ));
        }
        let mut urls = Vec::with_capacity(stores.len());
        for store in stores {
            let key = schema_key(store);
            let schema = text(&key)?;
            if schema.trim().is_empty() || schema.contains('\0') {
                return Err(ConfigError::Invalid(format!(
                    "{key} must name a schema, got {schema:?}"
                )));
            }
            let mut url = DatabaseUrl::parse(&text(&url_key(store))?)?;
            if let Some(dir) = file_dir
                .as_deref()
                .filter(|_| files::from_file(&figment, &url_key(store)))
            {
                url = files::url_in(dir, url)?;
            }
            urls.push((store.to_string(), url.with_schema(&schema)));
        }
        let backup_dir = match file_dir.as_deref() {
            Some(dir) if files::from_file(&figment, "backup_dir") => {
                files::path_in(dir, common.backup_dir)
            }
            _ => common.backup_dir,
        };
        Ok(Settings {
            urls,
            protected: common.protected,
            backup_dir,
            files: file.into_iter().chain(dotenv_file).collect(),
            lock_timeout: Duration::from_secs(common.lock_timeout_secs),
            profile,
            sources,
            notes,
        })
    }

    /// The URL configured for a store.
    pub fn url_for(&self, store: &str) -> Result<&DatabaseUrl, ConfigError> {
        self.urls
            .iter()
            .find(|(name, _)| name == store)
            .map(|(_, url)| url)
            .ok_or_else(|| ConfigError::UnknownStore(store.to_string()))
    }
}

/// The types of the selected profile's values, before anything overrides them: the
/// common settings as [`CommonSettings`] has them, and every store's URL and schema a
/// string.
fn check_types(figment: &Figment, stores: &[&str]) -> Result<(), ConfigError> {
    figment
        .extract::<CommonSettings>()
        .map_err(|e| ConfigError::Invalid(describe(e)))?;
    for store in stores {
        for key in [url_key(store), schema_key(store)] {
            figment
                .extract_inner::<String>(&key)
                .map_err(|e| ConfigError::Invalid(describe(e)))?;
        }
    }
    Ok(())
}

/// Refuses a key of the selected profile that is neither a common setting nor one of a
/// known store's (a typo such as `auth_ur` would otherwise be ignored in silence).
fn check_known_keys(
    figment: &Figment,
    known: &[String],
    profile: &str,
    file: Option<&Path>,
) -> Result<(), ConfigError> {
    let given: BTreeMap<String, figment::value::Value> = figment
        .extract()
        .map_err(|e| ConfigError::Invalid(describe(e)))?;
    let unknown: Vec<&String> = given.keys().filter(|k| !known.contains(k)).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let names = unknown
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(ConfigError::Invalid(format!(
        "unknown key(s) {names} in profile [{profile}] of {}; expected one of: {}",
        file_name(file),
        known.join(", ")
    )))
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

#[cfg(test)]
mod tests;
