//! The PostgreSQL side of a rebuild: one transaction per store that takes the write fence
//! (every table of the schema locked `EXCLUSIVE`), then drops the schema, recreates it with
//! its owner and grants, and fills it (migrations on our own session, a dump through
//! `psql`), left open (or prepared) until every store is ready.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

use shared::pg_access::{self, AccessRules};
use shared::store::Store;
use shared::{admin, Conn, DatabaseUrl};

use super::StepError;
use crate::backup::StoreBackup;
use crate::context::Context;
use crate::pgtools::{self, PgTools};

/// Opens the store's rebuild transaction on the run's pooled session of the store (the
/// one holding its run lock) and takes the write fence in it. Returns that session,
/// inside the transaction; the rebuild gives it back to the pool once the transaction
/// has ended (see `Context::give_back`), so the run lock outlives the commit and the
/// run clears its journal before another run can take the lock.
///
/// One session for both, rather than a connection of the rebuild's own: the lock and
/// the transaction end together (a session ended under the run takes its transaction
/// with it, so no other run can work between the fence and the commit unseen), and a
/// reset opens two connections fewer (each a TLS handshake and a server process).
pub(super) fn fence(ctx: &Context, store: &'static Store) -> Result<Conn, StepError> {
    let conn = ctx
        .lend(store)
        .map_err(|e| ("taking the run's session", e))?;
    fence_on(ctx, store, conn).map_err(|(conn, step, e)| {
        // The session and its run lock stay with the run until it ends.
        if let Some(mut conn) = conn {
            if end_failed(&mut conn) {
                ctx.give_back(store.name, *conn);
            }
        }
        (step, e)
    })
}

/// A connection of its own, fenced: what a change in place (`repair`) works in beside
/// the run's session.
pub(crate) fn fence_own(ctx: &Context, store: &'static Store) -> Result<Conn, StepError> {
    let conn = ctx
        .connect(store)
        .map_err(|e| ("connecting", e.to_string()))?;
    fence_on(ctx, store, conn).map_err(|(_, step, e)| (step, e))
}

/// A failed fence: the connection, when it is still there (boxed: it is large).
type FenceError = (Option<Box<Conn>>, &'static str, String);

/// Ends whatever transaction a failed fence left open on `conn`; whether the session is
/// fit to go back to the run's pool.
fn end_failed(conn: &mut Conn) -> bool {
    let open = match conn {
        Conn::Postgres(pg) => shared::db::in_transaction(pg),
        Conn::Sqlite(_) => return false,
    };
    if open {
        admin::rollback(conn).is_ok()
    } else {
        // A BEGIN in a batch that failed after it: the server's transaction block is
        // open (and aborted) though diesel never counted it.
        conn.batch_execute("ROLLBACK").is_ok()
    }
}

/// Takes the rebuild lock on `conn`, opens its transaction and takes the write fence.
fn fence_on(ctx: &Context, store: &'static Store, mut conn: Conn) -> Result<Conn, FenceError> {
    // Held by this session until it ends: see `admin::rebuild_lock_key`.
    if let Err(e) = admin::advisory_lock(&mut conn, admin::rebuild_lock_key(store.name)) {
        return Err((
            Some(Box::new(conn)),
            "taking the rebuild lock",
            e.to_string(),
        ));
    }
    // The transaction, the wait's bound, the schema (created when missing), the fence.
    let schema = ctx
        .url(store)
        .map(|u| u.schema().to_string())
        .unwrap_or_default();
    match admin::begin_fenced(&mut conn, &schema, ctx.settings.lock_timeout.as_secs()) {
        Ok(()) => Ok(conn),
        Err(e) => Err((
            Some(Box::new(conn)),
            "locking the tables against writes",
            lock_hint(e),
        )),
    }
}

fn lock_hint(e: impl std::fmt::Display) -> String {
    let e = e.to_string();
    if e.contains("lock timeout") {
        format!("{e} (other sessions hold its tables; stop them or retry)")
    } else {
        e
    }
}

/// Drops the schema with everything in it and recreates it with its owner, grants,
/// comment and default privileges, inside the fenced transaction. Returns the access
/// rules, whose object grants go back once the migrations have recreated the objects.
pub(super) fn clear(conn: &mut Conn) -> Result<AccessRules, StepError> {
    let rules = pg_access::read(conn).map_err(|e| ("reading the access rules", e.to_string()))?;
    let (_, sql) = admin::schema_rebuild_sql(conn)
        .map_err(|e| ("reading the schema's grants", e.to_string()))?;
    conn.batch_execute(&sql)
        .map_err(|e| ("dropping the schema", lock_hint(e)))?;
    let schema_rules = pg_access::schema_sql(&rules);
    if schema_rules.is_empty() {
        return Ok(rules);
    }
    conn.batch_execute(&schema_rules).map_err(|e| {
        (
            "re-applying the schema's comment and default privileges",
            e.to_string(),
        )
    })?;
    Ok(rules)
}

/// What loading a dump leaves: a prepared transaction, or psql's still open one.
pub(super) enum Loaded {
    Prepared(String),
    Open(Box<PsqlTxn>),
}

/// A restore's psql session holding the fence in its open transaction, with what the
/// load will run once every store is fenced and backed up.
pub(super) struct Fenced {
    txn: PsqlTxn,
    schema: String,
    /// Drops the schema and recreates it with its owner and grants.
    rebuild: String,
    /// The dump as SQL (`pg_restore --file -`).
    dump_sql: Vec<u8>,
    /// What the dump creates outside the store's schema and must replace: its other
    /// schemas, and its large objects (by oid).
    replaces: Vec<String>,
}

impl Fenced {
    pub(super) fn abort(self) {
        self.txn.abort();
    }
}

/// What a load needs besides the fenced session.
pub(super) struct LoadJob<'a> {
    pub entry: &'a StoreBackup,
    pub run: &'a str,
    pub names: &'a [&'a str],
    pub record: &'a str,
    pub two_phase: bool,
    /// Told how many of the script's bytes psql has taken, and how many there are.
    pub progress: &'a (dyn Fn(u64, u64) + Sync),
}

/// How much of the load script is handed to psql at a time: psql takes it as fast as the
/// server runs it, so the bytes handed over say how far the load is.
const LOAD_CHUNK: usize = 1 << 20;

/// Starts psql for a restore: its transaction takes the rebuild lock and the fence;
/// nothing is dropped yet. The dump is turned into SQL first, so a
/// damaged one fails before any lock is taken.
pub(super) fn fence_for_load(
    ctx: &Context,
    store: &'static Store,
    url: &DatabaseUrl,
    dump: &std::path::Path,
) -> Result<Fenced, String> {
    let mut session = ctx.session(store).map_err(|e| e.to_string())?;
    let major = admin::server_major(&mut session).map_err(|e| e.to_string())?;
    // A store restored into a schema that does not exist yet gets it, as on reset.
    session
        .batch_execute(&admin::ensure_schema_sql(url.schema()))
        .map_err(|e| format!("creating the store's schema: {e}"))?;
    let (schema, rebuild) = admin::schema_rebuild_sql(&mut session).map_err(|e| e.to_string())?;
    drop(session);
    let tools = PgTools::find(major)?;
    let mut to_sql = tools.command("pg_restore");
    to_sql.args(["--no-owner", "--file", "-"]).arg(dump);
    let dump_sql = pgtools::run(to_sql, "pg_restore", url)?.stdout;
    let mut list = tools.command("pg_restore");
    list.arg("--list").arg(dump);
    let toc =
        String::from_utf8_lossy(&pgtools::run(list, "pg_restore --list", url)?.stdout).into_owned();
    let replaces = replaced_outside(&toc, &schema);

    let mut script = String::new();
    script.push_str("\\set ON_ERROR_STOP on\nSET client_min_messages = warning;\n");
    // The transaction may wait, open, for the other stores: a role's idle timeout must
    // not end it half way.
    script.push_str("SET idle_in_transaction_session_timeout = 0;\n");
    script.push_str(&admin::advisory_lock_sql(admin::rebuild_lock_key(
        store.name,
    )));
    script.push_str(&format!(
        "SET search_path TO {};\n",
        shared::db::quote_ident(&schema)
    ));
    script.push_str("BEGIN;\n");
    script.push_str(&format!(
        "SET LOCAL lock_timeout = '{}s';\n",
        ctx.settings.lock_timeout.as_secs().max(1)
    ));
    script.push_str(&admin::fence_sql());
    script.push_str(&format!("\\echo {FENCED}\n"));

    let mut psql = tools.connected("psql", url);
    psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"]);
    psql.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = psql.spawn().map_err(|e| format!("cannot run psql: {e}"))?;
    let mut txn = PsqlTxn::new(child, url.clone())?;
    let fenced = txn.write(script.as_bytes()).is_ok() && txn.wait_for(FENCED);
    if !fenced {
        return Err(lock_hint(txn.fail()));
    }
    Ok(Fenced {
        txn,
        schema,
        rebuild,
        dump_sql,
        replaces,
    })
}

/// What psql prints once its transaction holds the fence.
const FENCED: &str = "orchestrator: fenced";

/// The statements that clear what a dump recreates outside the store's schema: the
/// dump's other schemas (dropped with what is in them now) and its large objects (a
/// live one with the same oid would refuse the load). Read from `pg_restore --list`.
fn replaced_outside(toc: &str, schema: &str) -> Vec<String> {
    let mut sql = Vec::new();
    let mut oids = Vec::new();
    for line in toc.lines().filter(|l| !l.starts_with(';')) {
        let words: Vec<&str> = line.split_whitespace().collect();
        // "12; 2615 16390 SCHEMA - billing postgres"
        if let Some(i) = words.iter().position(|w| *w == "SCHEMA") {
            if words.get(i + 1) == Some(&"-") {
                if let Some(name) = words
                    .get(i + 2)
                    .filter(|n| **n != schema && **n != "public")
                {
                    sql.push(format!(
                        "DROP SCHEMA IF EXISTS {} CASCADE;",
                        shared::db::quote_ident(name)
                    ));
                }
            }
        }
        // "3456; 2613 16400 BLOB - 16400 postgres" ("LARGE OBJECT" from PostgreSQL 17)
        let blob = words
            .windows(2)
            .position(|w| w == ["LARGE", "OBJECT"])
            .map(|i| i + 1);
        if let Some(i) = words.iter().position(|w| *w == "BLOB").or(blob) {
            if let Some(oid) = words.get(i + 2).and_then(|w| w.parse::<u32>().ok()) {
                oids.push(oid.to_string());
            }
        }
    }
    if !oids.is_empty() {
        sql.push(format!(
            "SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata WHERE oid IN ({});",
            oids.join(", ")
        ));
    }
    sql
}

/// Loads the dump in the fenced transaction: drop and recreate the schema (and what the
/// dump recreates outside it), the dump, the journal row, a check of every table's row
/// count against the manifest; then `PREPARE TRANSACTION` (with two-phase commit), or
/// nothing: psql keeps the transaction open until [`PsqlTxn::commit`], so that no store
/// commits before every store is loaded, exactly as a reset's transactions do.
pub(super) fn load(fenced: Fenced, job: &LoadJob<'_>) -> Result<Loaded, String> {
    let Fenced {
        mut txn,
        schema,
        rebuild,
        dump_sql,
        replaces,
        ..
    } = fenced;
    let expected: Vec<(String, i64)> = job
        .entry
        .row_counts
        .iter()
        .map(|(t, n)| (t.clone(), *n))
        .collect();
    let mut script = Vec::with_capacity(dump_sql.len() + 4096);
    for statement in &replaces {
        script.extend_from_slice(statement.as_bytes());
        script.push(b'\n');
    }
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

    // A failing psql stops reading; its own message says why.
    let total = script.len() as u64;
    let written = script.chunks(LOAD_CHUNK).try_fold(0u64, |done, chunk| {
        txn.write(chunk)?;
        let done = done + chunk.len() as u64;
        (job.progress)(done, total);
        Ok::<u64, std::io::Error>(done)
    });
    let written = written.is_ok();
    if !written || !txn.wait_for(LOADED) {
        return Err(txn.fail());
    }
    if !job.two_phase {
        return Ok(Loaded::Open(Box::new(txn)));
    }
    // Written only once psql says everything above ran: should this process die before,
    // psql reads the end of its input, quits, and the server rolls the load back; psql
    // never finishes a load on its own after its run is gone.
    let gid = super::gid(job.run, job.entry.store.as_str());
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
