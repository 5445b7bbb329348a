//! Connections to either backend, opened the same way everywhere so that every connection
//! has the same safety settings: in SQLite foreign keys on and a busy timeout of the run's
//! lock bound; in PostgreSQL a connect timeout, an application name naming the process and
//! host, and the session state of `pg_session::prepare_session` (the run's lock bound).

use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};

use crate::error::DbError;
use crate::url::{Backend, DatabaseUrl};

pub use crate::session::APPLICATION_NAME;

/// Runs `$body` with `$c` bound to the concrete diesel connection of either backend, so
/// one piece of diesel code serves both (each expansion is type-checked on its own).
#[macro_export]
macro_rules! with_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::Conn::Postgres($c) => $body,
            $crate::db::Conn::Sqlite($c) => $body,
        }
    };
}

/// Runs `$body` in a write transaction on either backend. On SQLite the transaction is
/// `BEGIN IMMEDIATE`: it takes the write lock up front, so concurrent writers queue on the
/// busy timeout instead of failing when a reader would upgrade to a writer.
#[macro_export]
macro_rules! with_write_txn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::Conn::Postgres(pg) => diesel::Connection::transaction(pg, |$c| $body),
            $crate::db::Conn::Sqlite(lite) => {
                if $crate::db::in_transaction(lite) {
                    // Inside a caller's transaction (a smoke run, say): a savepoint.
                    diesel::Connection::transaction(lite, |$c| $body)
                } else {
                    lite.immediate_transaction(|$c| $body)
                }
            }
        }
    };
}

/// Whether diesel has a transaction open on this connection.
pub fn in_transaction<C>(conn: &mut C) -> bool
where
    C: Connection<TransactionManager = diesel::connection::AnsiTransactionManager>,
{
    use diesel::connection::TransactionManager;
    diesel::connection::AnsiTransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()
        .ok()
        .flatten()
        .is_some()
}

/// Whether the connection must not be handed to anyone else as it is: diesel has a
/// transaction open on it, or its transaction manager is broken (a failed `ROLLBACK`).
pub fn transaction_left_open(conn: &mut Conn) -> bool {
    fn left_open<C>(conn: &mut C) -> bool
    where
        C: Connection<TransactionManager = diesel::connection::AnsiTransactionManager>,
    {
        use diesel::connection::TransactionManager;
        diesel::connection::AnsiTransactionManager::transaction_manager_status_mut(conn)
            .transaction_depth()
            .map_or(true, |depth| depth.is_some())
    }
    match conn {
        Conn::Postgres(c) => left_open(c),
        Conn::Sqlite(c) => left_open(c),
    }
}

/// A connection to one store's database.
pub enum Conn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

impl Conn {
    /// Opens a connection. SQLite files and their folder are created when missing.
    pub fn establish(store: &str, url: &DatabaseUrl) -> Result<Conn, DbError> {
        let connect_error = |reason: String| DbError::Connect {
            store: store.to_string(),
            url: url.redacted().to_string(),
            reason: one_line(&scrub(url, &reason)),
        };
        match url.backend() {
            Backend::Postgres => {
                let conn = open_postgres(url).map_err(connect_error)?;
                Ok(Conn::Postgres(conn))
            }
            Backend::Sqlite => {
                let path = url
                    .sqlite_path()
                    .unwrap_or_else(|| std::path::Path::new(""));
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        connect_error(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())
                    .map_err(|e| connect_error(e.to_string()))?;
                // The busy timeout first, so that no statement, not even one reading the
                // schema, fails on a lock before it has waited the run's bound. Foreign
                // keys are off by default in SQLite and cannot be changed inside a
                // transaction, so they are set here, on every connection.
                diesel::sql_query(format!(
                    "PRAGMA busy_timeout = {}",
                    crate::session::lock_timeout_millis().min(i32::MAX as u64)
                ))
                .execute(&mut conn)
                .and_then(|_| diesel::sql_query("PRAGMA foreign_keys = ON").execute(&mut conn))
                .map_err(|e| connect_error(e.to_string()))?;
                Ok(Conn::Sqlite(conn))
            }
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Conn::Postgres(_) => Backend::Postgres,
            Conn::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Runs SQL that returns no rows (several statements allowed).
    pub fn batch_execute(&mut self, sql: &str) -> diesel::QueryResult<()> {
        use diesel::connection::SimpleConnection;
        match self {
            Conn::Postgres(c) => c.batch_execute(sql),
            Conn::Sqlite(c) => c.batch_execute(sql),
        }
    }
}

/// Opens a PostgreSQL connection with our connect string and session state; errors are
/// the driver's words, one line, password removed.
pub fn open_postgres(url: &DatabaseUrl) -> Result<PgConnection, String> {
    let fail = |e: &dyn std::fmt::Display| one_line(&scrub(url, e.to_string().trim()));
    let mut conn = PgConnection::establish(&postgres_connect_string(url)).map_err(|e| fail(&e))?;
    crate::pg_session::prepare_session(&mut conn, crate::session::lock_timeout_millis())
        .map_err(|e| fail(&format!("setting up the session: {e}")))?;
    // The store's schema, whatever the role's search_path: a schema named after the role
    // (the per-user pattern) must not hide the store's tables or receive a second set.
    {
        use diesel::connection::SimpleConnection;
        conn.batch_execute(&format!("SET search_path TO {}", quote_ident(url.schema())))
            .map_err(|e| fail(&format!("setting search_path: {e}")))?;
    }
    Ok(conn)
}

/// The connect string for libpq: the configured URL plus a connect timeout (an unreachable
/// host must not hang a run for minutes) and our application name, unless the user set
/// them.
pub fn postgres_connect_string(url: &DatabaseUrl) -> String {
    let raw = url.expose_secret();
    let mut extra = Vec::new();
    if !raw.contains("connect_timeout=") {
        extra.push("connect_timeout=10".to_string());
    }
    if !raw.contains("application_name=") {
        let name: String =
            url::form_urlencoded::byte_serialize(crate::session::application_name().as_bytes())
                .collect();
        // libpq decodes %XX in URI parameters but not `+`.
        extra.push(format!("application_name={}", name.replace('+', "%20")));
    }
    if extra.is_empty() {
        return raw.to_string();
    }
    let sep = if raw.contains('?') { '&' } else { '?' };
    format!("{raw}{sep}{}", extra.join("&"))
}

/// Removes the URL's password from a driver message, in case a driver ever echoes it.
pub fn scrub(url: &DatabaseUrl, message: &str) -> String {
    let raw = url.expose_secret();
    let mut out = message.replace(raw, url.redacted());
    if let Ok(parsed) = url::Url::parse(raw) {
        if let Some(pw) = parsed.password().filter(|p| p.len() >= 3) {
            out = out.replace(pw, "***");
            let decoded = url::form_urlencoded::parse(format!("p={pw}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned());
            if let Some(decoded) = decoded.filter(|d| d.len() >= 3) {
                out = out.replace(&decoded, "***");
            }
        }
    }
    out
}

/// Driver messages (libpq's especially) span lines; errors here are printed as one.
pub fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Quotes an identifier for both backends (standard SQL double quotes).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal for both backends.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_string_adds_timeout_and_name_once() {
        let url = DatabaseUrl::parse("postgres://u@localhost/db").expect("url");
        let expected = format!(
            "postgres://u@localhost/db?connect_timeout=10&application_name=orchestrator%20pid%3D{}%20host%3D",
            std::process::id()
        );
        assert!(
            postgres_connect_string(&url).starts_with(&expected),
            "{}",
            postgres_connect_string(&url)
        );
        let url =
            DatabaseUrl::parse("postgres://u@localhost/db?connect_timeout=3&application_name=x")
                .expect("url");
        assert_eq!(postgres_connect_string(&url), url.expose_secret());
    }

    #[test]
    fn scrub_removes_plain_and_decoded_passwords() {
        let url = DatabaseUrl::parse("postgres://u:p%40ssword@localhost/db").expect("url");
        let msg = scrub(
            &url,
            "failed for p@ssword and p%40ssword at postgres://u:p%40ssword@localhost/db",
        );
        assert!(!msg.contains("ssword"), "{msg}");
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("o'neil"), "'o''neil'");
    }

    #[test]
    fn sqlite_connections_enforce_foreign_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = DatabaseUrl::parse(&dir.path().join("sub/x.db").to_string_lossy()).expect("url");
        let mut conn = Conn::establish("auth", &url).expect("open");
        conn.batch_execute(
            "CREATE TABLE p(id TEXT PRIMARY KEY); CREATE TABLE c(p TEXT REFERENCES p(id));",
        )
        .expect("schema");
        assert!(conn
            .batch_execute("INSERT INTO c VALUES ('missing')")
            .is_err());
    }
}
