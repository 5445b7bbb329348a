//! What every command starts from: the resolved configuration, the stores it covers, and
//! how to print for people versus machines.

use std::io::IsTerminal;
use std::path::PathBuf;

use shared::store::{dependency_order, Store};
use shared::{Conn, DatabaseUrl, DbError, Overrides, Settings};

use crate::cli::{Format, GlobalArgs, StoreName};
use crate::exit::CliResult;

/// Every store this orchestrator knows, in no particular order.
pub fn all_stores() -> [&'static Store; 2] {
    [&auth_db::STORE, &app_db::STORE]
}

/// The stores a command covers, in dependency order (auth before app).
pub fn selected_stores(only: Option<StoreName>) -> Vec<&'static Store> {
    let chosen: Vec<&'static Store> = all_stores()
        .into_iter()
        .filter(|s| only.is_none_or(|o| o.as_str() == s.name))
        .collect();
    dependency_order(&chosen)
}

pub struct Context {
    pub settings: Settings,
    pub format: Format,
    pub verbose: u8,
    pub quiet: bool,
    pub cwd: PathBuf,
}

impl Context {
    pub fn load(global: &GlobalArgs) -> CliResult<Context> {
        let cwd = std::env::current_dir().map_err(|e| {
            crate::exit::CliError::usage(format!("cannot read the current directory: {e}"))
        })?;
        let overrides = Overrides {
            config_file: global.config.clone(),
            profile: global.profile.clone(),
            auth_url: global.auth_url.clone(),
            app_url: global.app_url.clone(),
        };
        let settings = Settings::load(&cwd, &overrides)?;
        for (key, source) in &settings.sources {
            tracing::debug!(%key, %source, "configuration");
        }
        tracing::info!(
            profile = %settings.profile,
            auth = %settings.auth_url,
            app = %settings.app_url,
            "configuration resolved"
        );
        Ok(Context {
            settings,
            format: global.format,
            verbose: global.verbose,
            quiet: global.quiet,
            cwd,
        })
    }

    pub fn url(&self, store: &Store) -> CliResult<&DatabaseUrl> {
        Ok(self.settings.url_for(store.name)?)
    }

    pub fn connect(&self, store: &Store) -> Result<Conn, DbError> {
        let url = self
            .settings
            .url_for(store.name)
            .map_err(|e| DbError::Connect {
                store: store.name.to_string(),
                url: String::new(),
                reason: e.to_string(),
            })?;
        let started = std::time::Instant::now();
        let conn = Conn::establish(store.name, url)?;
        tracing::info!(store = store.name, url = %url, millis = started.elapsed().as_millis() as u64, "connected");
        Ok(conn)
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// Progress lines for people: only in text mode, not with -q, and only when stderr is
    /// a terminal (a pipe or a CI log gets the report alone).
    pub fn progress(&self, line: impl AsRef<str>) {
        if !self.json() && !self.quiet && std::io::stderr().is_terminal() {
            eprintln!("{}", line.as_ref());
        }
    }
}
