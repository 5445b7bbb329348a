//! The PostgreSQL side of a rebuild: one transaction per store that drops the schema,
//! recreates it with its owner and grants, and fills it (migrations on our own session, a
//! dump through `psql`), left open (or prepared) until every store is ready.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

use shared::store::Store;
use shared::{admin, Conn, DatabaseUrl};

use crate::backup::StoreBackup;
use crate::context::Context;
use crate::pgtools::{self, PgTools};

/// Opens the store's rebuild transaction on a connection of its own and drops the schema
/// in it. Returns the connection, inside that transaction.
pub(super) fn open(ctx: &Context, store: &'static Store) -> Result<Conn, (&'static str, String)> {
    // The run's pooled session holds the store's advisory lock, so it stays in the pool
    // until the run ends and the rebuild transaction gets a connection of its own. Were
    // it the transaction's, the lock would end with this store's commit: a waiting run
    // could then take both locks while this one still clears its journal, find the run's
    // row in one store but not the other, and redo a reset that had finished.
    let mut conn = ctx
        .connect(store)
        .map_err(|e| ("connecting", e.to_string()))?;
    // Held by this session until it ends: see `admin::rebuild_lock_key`.
    admin::advisory_lock(&mut conn, admin::rebuild_lock_key(store.name))
        .map_err(|e| ("taking the rebuild lock", e.to_string()))?;
    admin::begin(&mut conn).map_err(|e| ("BEGIN", e.to_string()))?;
    admin::set_local_lock_timeout(&mut conn, ctx.settings.lock_timeout.as_secs())
        .map_err(|e| ("SET lock_timeout", e.to_string()))?;
    let (_, sql) = admin::schema_rebuild_sql(&mut conn)
        .map_err(|e| ("reading the schema's grants", e.to_string()))?;
    conn.batch_execute(&sql).map_err(|e| {
        let hint = if e.to_string().contains("lock timeout") {
            format!("{e} (other sessions hold its tables; stop them or retry)")
        } else {
            e.to_string()
        };
        ("dropping the schema", hint)
    })?;
    Ok(conn)
}

/// What loading a dump leaves: a prepared transaction, or psql's still open one.
pub(super) enum Loaded {
    Prepared(String),
    Open(PsqlTxn),
}

/// What a load needs besides the store.
pub(super) struct LoadJob<'a> {
    pub dir: &'a Path,
    pub entry: &'a StoreBackup,
    pub run: &'a str,
    pub names: &'a [&'a str],
    pub record: &'a str,
    pub two_phase: bool,
}

/// Loads a PostgreSQL dump with psql in one transaction: drop and recreate the schema,
/// the dump, the journal row, a check of every table's row count against the manifest;
/// then `PREPARE TRANSACTION` (with two-phase commit), or nothing: psql keeps the
/// transaction open until [`PsqlTxn::commit`], so that no store commits before every
/// store is loaded, exactly as a reset's transactions do.
pub(super) fn load(
    ctx: &Context,
    store: &Store,
    url: &DatabaseUrl,
    conn: &mut Conn,
    job: &LoadJob<'_>,
) -> Result<Loaded, String> {
    let major = admin::server_major(conn).map_err(|e| e.to_string())?;
    let tools = PgTools::find(major)?;
    let (schema, rebuild) = admin::schema_rebuild_sql(conn).map_err(|e| e.to_string())?;
    let mut to_sql = tools.command("pg_restore");
    to_sql
        .args(["--no-owner", "--file", "-"])
        .arg(job.dir.join(&job.entry.file));
    let dump_sql = pgtools::run(to_sql, "pg_restore", url)?.stdout;

    let expected: Vec<(String, i64)> = job
        .entry
        .row_counts
        .iter()
        .map(|(t, n)| (t.clone(), *n))
        .collect();
    let mut script = Vec::with_capacity(dump_sql.len() + 4096);
    script.extend_from_slice(b"\\set ON_ERROR_STOP on\nSET client_min_messages = warning;\n");
    // The transaction may wait, open, for the other stores: a role's idle timeout must
    // not end it half way.
    script.extend_from_slice(b"SET idle_in_transaction_session_timeout = 0;\n");
    script.extend_from_slice(
        admin::advisory_lock_sql(admin::rebuild_lock_key(store.name)).as_bytes(),
    );
    script.extend_from_slice(b"BEGIN;\n");
    script.extend_from_slice(
        format!(
            "SET LOCAL lock_timeout = '{}s';\n",
            ctx.settings.lock_timeout.as_secs().max(1)
        )
        .as_bytes(),
    );
    script.extend_from_slice(rebuild.as_bytes());
    script.extend_from_slice(&dump_sql);
    script.extend_from_slice(b"\n");
    // pg_restore's script empties search_path; the bookkeeping goes into the schema.
    script.extend_from_slice(
        format!("SET search_path TO {};\n", shared::db::quote_ident(&schema)).as_bytes(),
    );
    script.extend_from_slice(admin::journal_record_sql(job.run, job.names, job.record).as_bytes());
    script.extend_from_slice(admin::row_count_check_sql(&schema, &expected).as_bytes());
    script.extend_from_slice(format!("\\echo {LOADED}\n").as_bytes());

    let mut psql = tools.connected("psql", url);
    psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"]);
    psql.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = psql.spawn().map_err(|e| format!("cannot run psql: {e}"))?;
    let mut txn = PsqlTxn::new(child, url.clone())?;
    // A failing psql stops reading; its own message says why.
    let written = txn.write(&script).is_ok();
    if !written || !txn.wait_for(LOADED) {
        return Err(txn.fail());
    }
    if !job.two_phase {
        return Ok(Loaded::Open(txn));
    }
    // Written only once psql says everything above ran: should this process die before,
    // psql reads the end of its input, quits, and the server rolls the load back; psql
    // never finishes a load on its own after its run is gone.
    let gid = super::gid(job.run, store.name);
    txn.finish(&format!(
        "PREPARE TRANSACTION {};\n",
        shared::db::quote_literal(&gid)
    ))?;
    Ok(Loaded::Prepared(gid))
}

/// What the load script prints once everything but its last statement ran.
const LOADED: &str = "orchestrator: loaded";
/// What psql prints once our COMMIT returned.
const COMMITTED: &str = "orchestrator: committed";

/// A psql session whose transaction is open: it ends with our `COMMIT`, or rolls back when
/// its input ends (our `abort`, or this process dying).
pub(super) struct PsqlTxn {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// psql's messages, read on a thread of their own so that a chatty load never fills
    /// the pipe and stalls.
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
    url: DatabaseUrl,
}

impl PsqlTxn {
    fn new(mut child: Child, url: DatabaseUrl) -> Result<PsqlTxn, String> {
        let stdin = child.stdin.take().ok_or("psql has no stdin")?;
        let stdout = child.stdout.take().ok_or("psql has no stdout")?;
        let stderr = child.stderr.take().map(|mut err| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = std::io::Read::read_to_end(&mut err, &mut buf);
                buf
            })
        });
        Ok(PsqlTxn {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            stderr,
            url,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match &mut self.stdin {
            Some(stdin) => stdin.write_all(bytes).and_then(|()| stdin.flush()),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// Reads psql's output until `marker` (true) or its end (false).
    fn wait_for(&mut self, marker: &str) -> bool {
        let mut line = String::new();
        loop {
            line.clear();
            match self.stdout.read_line(&mut line) {
                Ok(0) | Err(_) => return false,
                Ok(_) if line.trim() == marker => return true,
                Ok(_) => {}
            }
        }
    }

    /// Sends the last statement, ends psql's input and waits for it to exit cleanly.
    fn finish(mut self, last: &str) -> Result<(), String> {
        let sent = self.write(last.as_bytes()).is_ok();
        self.stdin = None;
        let status = self.child.wait().map_err(|e| format!("psql: {e}"))?;
        if sent && status.success() {
            Ok(())
        } else {
            Err(self.fail())
        }
    }

    /// Commits psql's transaction and confirms it: `Err` when psql did not say the
    /// COMMIT returned (the outcome is then for the journal to tell).
    pub(super) fn commit(mut self) -> Result<(), String> {
        let sent = self
            .write(format!("COMMIT;\n\\echo {COMMITTED}\n").as_bytes())
            .is_ok();
        self.stdin = None;
        let confirmed = sent && self.wait_for(COMMITTED);
        let status = self.child.wait().map_err(|e| format!("psql: {e}"))?;
        if confirmed && status.success() {
            Ok(())
        } else {
            Err(self.fail())
        }
    }

    /// Ends psql's input with the transaction open: the server rolls it back.
    pub(super) fn abort(mut self) {
        let _ = self.write(b"ROLLBACK;\n");
        self.stdin = None;
        let _ = self.child.wait();
    }

    /// psql's own last words, for an error; the process is waited for.
    fn fail(mut self) -> String {
        self.stdin = None;
        let _ = self.child.wait();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        shared::db::scrub(
            &self.url,
            &format!("psql: {}", pgtools::last_words(&stderr)),
        )
    }
}
