//! What every command starts from: the resolved configuration, the stores it covers, and
//! how to print for people versus machines.

use std::io::IsTerminal;
use std::path::PathBuf;

use shared::store::{dependency_order, Store};
use shared::{Conn, DatabaseUrl, DbError, Overrides, Settings};

use crate::exit::CliResult;
use crate::output::Format;

/// Runs `work` on every item at once, one scoped thread each; the results come back in
/// the items' order, `None` where a worker panicked. The stores' independent work goes
/// through here.
pub fn in_parallel<I, T>(
    items: impl IntoIterator<Item = I>,
    work: impl Fn(I) -> T + Sync,
) -> Vec<Option<T>>
where
    I: Send,
    T: Send,
{
    let work = &work;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .into_iter()
            .map(|item| scope.spawn(move || work(item)))
            .collect();
        workers.into_iter().map(|w| w.join().ok()).collect()
    })
}

/// [`in_parallel`] for fallible work: the results in the items' order (the first error
/// wins); a worker that panics becomes an error naming `what`.
pub fn all_at_once<I, T>(
    items: &[I],
    what: &str,
    work: impl Fn(&I) -> CliResult<T> + Sync,
) -> CliResult<Vec<T>>
where
    I: Sync,
    T: Send,
{
    in_parallel(items, work)
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| {
                Err(crate::exit::CliError::new(
                    crate::exit::Exit::Database,
                    anyhow::anyhow!("a {what} worker panicked"),
                ))
            })
        })
        .collect()
}

/// Closes connections all at once: each close is a round of its own with the server
/// (libpq's goodbye, the TLS close), and they need not wait for one another.
pub fn close_all(conns: Vec<Conn>) {
    if conns.len() > 1 {
        in_parallel(conns, drop);
    }
}

/// Takes `store`'s entry out of one of the run's per-store lists (its idle sessions, its
/// spare connections).
fn take_named<T>(list: &std::sync::Mutex<Vec<(&'static str, T)>>, store: &str) -> Option<T> {
    let mut list = list.lock().ok()?;
    let i = list.iter().position(|(name, _)| *name == store)?;
    Some(list.swap_remove(i).1)
}

/// A connection opened ahead of need: open, or still opening on a thread of its own.
enum Spare {
    Ready(Conn),
    Opening(std::thread::JoinHandle<Result<Conn, DbError>>),
}

impl Spare {
    /// The connection, once open; `None` when opening it failed.
    fn into_conn(self) -> Option<Conn> {
        match self {
            Spare::Ready(conn) => Some(conn),
            Spare::Opening(opening) => opening.join().ok().and_then(Result::ok),
        }
    }
}

/// What the identity checks learnt of a store's server (see `identity`), for the reports
/// and the guard.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerFacts {
    /// A hot standby: it answers reads and refuses writes.
    pub read_only_replica: bool,
    /// Whether libpq connects to this machine, once asked (`identity::remote`).
    pub local: Option<bool>,
    /// Whether the server allows two-phase commit, once the preflight read it.
    pub two_phase: Option<bool>,
}

/// What a run is asked to do, whoever asks (the command line, or a program calling the
/// engine): configuration file, profile, URLs, and how to report.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub config: Option<PathBuf>,
    pub profile: Option<String>,
    pub urls: Vec<shared::config::GivenUrl>,
    pub format: Format,
    pub verbose: u8,
    pub quiet: bool,
}

pub struct Context {
    /// One idle connection per store, reused by the steps of a run (each new connection
    /// costs a TCP and TLS handshake).
    idle: std::sync::Mutex<Vec<(&'static str, Conn)>>,
    /// Connections opened ahead of need (the preflight's probe, or one opening in the
    /// background), handed to the next [`Context::connect`] of their store instead of a
    /// new one.
    spare: std::sync::Mutex<Vec<(&'static str, Spare)>>,
    servers: std::sync::Mutex<Vec<(&'static str, ServerFacts)>>,
    /// The stores this run knows (the registry's, see `stores`), in the registry's order.
    stores: &'static [&'static Store],
    pub settings: Settings,
    pub format: Format,
    pub verbose: u8,
    pub quiet: bool,
    pub cwd: PathBuf,
    /// The stores' progress lines on a terminal (see `progress`).
    progress: std::sync::Arc<crate::progress::Progress>,
}

impl Context {
    /// The context of a run on `stores`, as `asked`.
    pub fn load(stores: &'static [&'static Store], asked: Invocation) -> CliResult<Context> {
        let cwd = std::env::current_dir().map_err(|e| {
            crate::exit::CliError::usage(format!("cannot read the current directory: {e}"))
        })?;
        let overrides = Overrides {
            config_file: asked.config,
            profile: asked.profile,
            urls: asked.urls,
        };
        let names: Vec<&str> = stores.iter().map(|s| s.name).collect();
        let settings = Settings::load(&cwd, &names, &overrides)?;
        // Every connection opened from here on, wherever in the code, waits for locks no
        // longer than this.
        shared::session::set_lock_timeout(settings.lock_timeout);
        for file in &settings.files {
            tracing::debug!(file = %file.display(), "configuration file read");
        }
        for (key, source) in &settings.sources {
            tracing::debug!(%key, %source, "configuration");
        }
        for (store, url) in &settings.urls {
            tracing::info!(profile = %settings.profile, %store, %url, "configuration resolved");
        }
        if !asked.quiet {
            for note in &settings.notes {
                eprintln!("note: {note}");
            }
        }
        Ok(Context {
            stores,
            idle: std::sync::Mutex::new(Vec::new()),
            spare: std::sync::Mutex::new(Vec::new()),
            servers: std::sync::Mutex::new(Vec::new()),
            settings,
            format: asked.format,
            verbose: asked.verbose,
            quiet: asked.quiet,
            cwd,
            progress: {
                let progress = std::sync::Arc::new(crate::progress::Progress::new(
                    asked.format == Format::Text && !asked.quiet && std::io::stderr().is_terminal(),
                ));
                crate::progress::register(&progress);
                progress
            },
        })
    }

    /// Every store of this run, in the registry's order.
    pub fn stores(&self) -> Vec<&'static Store> {
        self.stores.to_vec()
    }

    /// The stores a command covers (`only` one, or all), in dependency order. A name the
    /// registry does not have (clap only offers the registry's) is an error.
    pub fn selected(&self, only: Option<&str>) -> CliResult<Vec<&'static Store>> {
        if let Some(name) = only {
            if !self.stores.iter().any(|s| s.name == name) {
                return Err(shared::ConfigError::UnknownStore(name.to_string()).into());
            }
        }
        let chosen: Vec<&'static Store> = self
            .stores
            .iter()
            .copied()
            .filter(|s| only.is_none_or(|o| o == s.name))
            .collect();
        Ok(dependency_order(&chosen))
    }

    /// The store named `name`, if this run has it.
    pub fn store(&self, name: &str) -> Option<&'static Store> {
        self.stores.iter().copied().find(|s| s.name == name)
    }

    pub fn url(&self, store: &Store) -> CliResult<&DatabaseUrl> {
        Ok(self.settings.url_for(store.name)?)
    }

    /// A connection to `store` of the caller's own (a spare one when there is one).
    pub fn connect(&self, store: &Store) -> Result<Conn, DbError> {
        let spare = take_named(&self.spare, store.name);
        // A spare that failed to open leaves the error to this attempt's own.
        if let Some(conn) = spare.and_then(Spare::into_conn) {
            return Ok(conn);
        }
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

    /// A connection to `store` that goes back to this run's pool when dropped; reuse it
    /// for plain statements outside transactions, or [`Session::detach`] it.
    pub fn session(&self, store: &'static Store) -> Result<Session<'_>, DbError> {
        let conn = match take_named(&self.idle, store.name) {
            Some(conn) => conn,
            None => self.connect(store)?,
        };
        Ok(Session {
            ctx: self,
            store: store.name,
            conn: Some(conn),
        })
    }

    /// Closes the pooled connection of `store`: a SQLite file swapped by a rename must be
    /// opened anew (an open connection still sees the replaced file).
    pub fn evict(&self, store: &str) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.retain(|(name, _)| *name != store);
        }
        if let Ok(mut spare) = self.spare.lock() {
            spare.retain(|(name, _)| *name != store);
        }
    }

    /// The run's pooled session of `store`, taken out of the pool (the session that took
    /// the store's run lock: never a new connection, which would hold no lock), to be
    /// given back with [`Context::give_back`].
    pub fn lend(&self, store: &'static Store) -> Result<Conn, String> {
        take_named(&self.idle, store.name).ok_or_else(|| {
            format!(
                "the run's session of the {} store is not free to lend",
                store.name
            )
        })
    }

    /// Puts a session taken with [`Session::detach`] or [`Context::lend`] back into the run's pool, with the
    /// locks it holds: the rebuild lends the session holding a store's run lock to that
    /// store's rebuild transaction and takes it back once the transaction has ended.
    pub fn give_back(&self, store: &'static str, conn: Conn) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push((store, conn));
        }
    }

    /// Keeps a connection with no transaction, lock or state of its own for the next
    /// [`Context::connect`] of `store`: it saves that a connection's handshake, and a
    /// command then holds no more connections than it counted.
    pub fn park_spare(&self, store: &'static str, conn: Conn) {
        if let Ok(mut spare) = self.spare.lock() {
            spare.push((store, Spare::Ready(conn)));
        }
    }

    /// Opens the next [`Context::connect`]'s connection to `store` on a thread of its
    /// own, so that its handshake overlaps what the run does first on its session
    /// (locking, settling, guarding) instead of preceding it.
    pub fn open_spare(&self, store: &'static Store) {
        let Ok(url) = self.settings.url_for(store.name).cloned() else {
            return;
        };
        let opening = std::thread::Builder::new()
            .name(format!("connect {}", store.name))
            .spawn(move || {
                let started = std::time::Instant::now();
                let conn = Conn::establish(store.name, &url)?;
                tracing::info!(store = store.name, url = %url, millis = started.elapsed().as_millis() as u64, "connected ahead");
                Ok(conn)
            });
        if let (Ok(opening), Ok(mut spare)) = (opening, self.spare.lock()) {
            spare.push((store.name, Spare::Opening(opening)));
        }
    }

    /// What is known of `store`'s server so far.
    pub fn server_facts(&self, store: &str) -> ServerFacts {
        self.servers
            .lock()
            .ok()
            .and_then(|s| s.iter().find(|(n, _)| *n == store).map(|(_, f)| *f))
            .unwrap_or_default()
    }

    /// Records something learnt of `store`'s server.
    pub fn note_server(&self, store: &'static str, note: impl FnOnce(&mut ServerFacts)) {
        if let Ok(mut servers) = self.servers.lock() {
            match servers.iter_mut().find(|(n, _)| *n == store) {
                Some((_, facts)) => note(facts),
                None => {
                    let mut facts = ServerFacts::default();
                    note(&mut facts);
                    servers.push((store, facts));
                }
            }
        }
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// Progress lines for people: only in text mode, not with -q, and only when stderr is
    /// a terminal (a pipe or a CI log gets the report alone).
    pub fn progress(&self, line: impl AsRef<str>) {
        self.progress.line(line.as_ref());
    }

    /// A statement on `store` failed while doing `action`: the error that names the store,
    /// its redacted URL and the reason in one line.
    pub fn query_error(
        &self,
        store: &Store,
        action: &str,
        e: impl std::fmt::Display,
    ) -> crate::exit::CliError {
        shared::DbError::Query {
            store: store.name.to_string(),
            url: self
                .url(store)
                .map(|u| u.redacted().to_string())
                .unwrap_or_default(),
            action: action.to_string(),
            reason: shared::db::one_line(&e.to_string()),
        }
        .into()
    }

    /// `store`'s progress line now says `message` (one line per store, updated in place).
    pub fn step(&self, store: &str, message: impl Into<String>) {
        self.progress.step(store, message.into());
    }
}

impl Drop for Context {
    /// The run's pooled connections close together rather than one after another.
    fn drop(&mut self) {
        let mut conns = Vec::new();
        if let Ok(mut idle) = self.idle.lock() {
            conns.extend(idle.drain(..).map(|(_, conn)| conn));
        }
        if let Ok(mut spare) = self.spare.lock() {
            conns.extend(spare.drain(..).filter_map(|(_, s)| s.into_conn()));
        }
        close_all(conns);
    }
}

/// A pooled connection; see [`Context::session`].
pub struct Session<'a> {
    ctx: &'a Context,
    store: &'static str,
    conn: Option<Conn>,
}

impl Session<'_> {
    /// Keeps the connection out of the pool (for a transaction of the caller's own).
    pub fn detach(mut self) -> Conn {
        match self.conn.take() {
            Some(conn) => conn,
            None => unreachable!("a session holds its connection until dropped or detached"),
        }
    }
}

impl std::ops::Deref for Session<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        match &self.conn {
            Some(conn) => conn,
            None => unreachable!("a session holds its connection until dropped or detached"),
        }
    }
}

impl std::ops::DerefMut for Session<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        match &mut self.conn {
            Some(conn) => conn,
            None => unreachable!("a session holds its connection until dropped or detached"),
        }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.ctx.give_back(self.store, conn);
        }
    }
}
