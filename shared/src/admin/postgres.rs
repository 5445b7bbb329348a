//! PostgreSQL's administrative SQL: server facts, advisory locks, the schema rebuild with
//! its owner and grants, the write fence, two-phase commit and exported snapshots.

use diesel::{QueryableByName, RunQueryDsl};

use super::{pg, Flag, Number, TextRow, GID_PREFIX};
use crate::db::{quote_ident, quote_literal, Conn};

/// The server's major version (15 for 15.4).
pub fn server_major(conn: &mut Conn) -> diesel::QueryResult<u32> {
    let row: Number =
        diesel::sql_query("SELECT current_setting('server_version_num')::bigint AS v")
            .get_result(pg(conn)?)?;
    Ok(u32::try_from(row.v / 10_000).unwrap_or(0))
}

/// Whether the server allows `PREPARE TRANSACTION`.
pub fn two_phase_available(conn: &mut Conn) -> diesel::QueryResult<bool> {
    let row: Number =
        diesel::sql_query("SELECT current_setting('max_prepared_transactions')::bigint AS v")
            .get_result(pg(conn)?)?;
    Ok(row.v > 0)
}

/// `pg_advisory_lock(key)`, as a statement for scripts run by psql (prints nothing).
pub fn advisory_lock_sql(key: i64) -> String {
    format!("DO $orch$ BEGIN PERFORM pg_advisory_lock({key}); END $orch$;\n")
}

/// Takes a session-level advisory lock, waiting (bounded by the session's lock_timeout).
pub fn advisory_lock(conn: &mut Conn, key: i64) -> diesel::QueryResult<()> {
    diesel::sql_query(format!("SELECT pg_advisory_lock({key})::text AS v"))
        .get_result::<TextRow>(pg(conn)?)
        .map(|_| ())
}

/// Releases a session-level advisory lock this session holds.
pub fn advisory_unlock(conn: &mut Conn, key: i64) -> diesel::QueryResult<bool> {
    let row: Flag = diesel::sql_query(format!("SELECT pg_advisory_unlock({key}) AS v"))
        .get_result(pg(conn)?)?;
    Ok(row.v)
}

/// `pg_try_advisory_lock_shared(key)`: shared with other readers, not with a run holding
/// the key exclusively.
pub fn try_advisory_lock_shared(conn: &mut Conn, key: i64) -> diesel::QueryResult<bool> {
    let row: Flag = diesel::sql_query(format!("SELECT pg_try_advisory_lock_shared({key}) AS v"))
        .get_result(pg(conn)?)?;
    Ok(row.v)
}

/// Releases one shared hold of `key` by this session.
pub fn advisory_unlock_shared(conn: &mut Conn, key: i64) -> diesel::QueryResult<bool> {
    let row: Flag = diesel::sql_query(format!("SELECT pg_advisory_unlock_shared({key}) AS v"))
        .get_result(pg(conn)?)?;
    Ok(row.v)
}

pub fn try_advisory_lock(conn: &mut Conn, key: i64) -> diesel::QueryResult<bool> {
    let row: Flag = diesel::sql_query(format!("SELECT pg_try_advisory_lock({key}) AS v"))
        .get_result(pg(conn)?)?;
    Ok(row.v)
}

/// Creates the store's schema when it does not exist yet, and makes it the session's
/// (a configured schema other than `public` starts out missing). Only when missing:
/// `CREATE SCHEMA IF NOT EXISTS` needs the right to create schemas even when it exists.
pub fn ensure_schema_sql(schema: &str) -> String {
    let ident = quote_ident(schema);
    format!(
        "DO $orch$ BEGIN IF to_regnamespace({}) IS NULL THEN CREATE SCHEMA {ident}; END IF; END $orch$;\n\
         SET search_path TO {ident};\n",
        quote_literal(&ident)
    )
}

/// The write fence of a rebuild, as one statement: every table of the schema (the
/// connection's current one) locked `EXCLUSIVE` in the rebuild's transaction. Readers go
/// on reading; writers (and foreign-key checks from other schemas) wait until the
/// rebuild ends, so a snapshot taken after it holds exactly what the rebuild drops.
/// Inheriting children and partitions, wherever they live, are locked with their parent.
/// For scripts run by psql; a connection of ours takes it with [`begin_fenced`].
pub fn fence_sql() -> String {
    format!(
        "DO $orch$ DECLARE t text; BEGIN \
           t := {}; \
           IF t IS NOT NULL THEN EXECUTE 'LOCK TABLE ' || t || ' IN EXCLUSIVE MODE'; END IF; \
         END $orch$;\n",
        schema_tables_sql("current_schema()")
    )
}

/// The tables (ordinary and partitioned) of the schema named by the SQL expression
/// `schema`, as a `LOCK TABLE` list: quoted, comma-separated, NULL when there is none.
fn schema_tables_sql(schema: &str) -> String {
    format!(
        "(SELECT string_agg(format('%I.%I', n.nspname, c.relname), ', ' ORDER BY c.relname) \
            FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
           WHERE n.nspname = {schema} AND c.relkind IN ('r', 'p'))"
    )
}

#[derive(QueryableByName)]
struct FenceTargets {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    present: bool,
    /// The schema's tables, quoted and comma-separated ("" when none).
    #[diesel(sql_type = diesel::sql_types::Text)]
    tables: String,
}

fn fence_targets(c: &mut diesel::PgConnection, schema: &str) -> diesel::QueryResult<FenceTargets> {
    diesel::sql_query(format!(
        "SELECT to_regnamespace({}) IS NOT NULL AS present, COALESCE({}, '') AS tables",
        quote_literal(&quote_ident(schema)),
        schema_tables_sql(&quote_literal(schema))
    ))
    .get_result(c)
}

/// How often the fence reads the schema's tables again before it gives up on a schema
/// whose tables keep changing while it locks them.
const FENCE_ROUNDS: usize = 8;

/// Opens the rebuild's transaction and takes its write fence (see [`fence_sql`]), with
/// every lock wait bounded by `lock_timeout_secs`: the store's schema is created when it
/// does not exist yet and made the session's, and every table in it is locked
/// `EXCLUSIVE`. Plain SQL rather than a `DO` block, which would load PL/pgSQL into the
/// new session (about 2 ms of server time). The tables are listed before the transaction
/// and once more under the locks: a table created in between is locked too.
pub fn begin_fenced(
    conn: &mut Conn,
    schema: &str,
    lock_timeout_secs: u64,
) -> diesel::QueryResult<()> {
    use diesel::connection::{AnsiTransactionManager, SimpleConnection};
    let c = pg(conn)?;
    let first = fence_targets(c, schema)?;
    let ident = quote_ident(schema);
    let mut sql = format!(
        "BEGIN;\nSET LOCAL lock_timeout = '{}s';\n",
        lock_timeout_secs.max(1)
    );
    if !first.present {
        sql.push_str(&format!("CREATE SCHEMA {ident};\n"));
    }
    sql.push_str(&format!("SET search_path TO {ident};\n"));
    let mut locked = first.tables;
    if !locked.is_empty() {
        sql.push_str(&format!("LOCK TABLE {locked} IN EXCLUSIVE MODE;\n"));
    }
    AnsiTransactionManager::begin_transaction_sql(c, &sql)?;
    for _ in 0..FENCE_ROUNDS {
        let now = fence_targets(c, schema)?.tables;
        if now == locked {
            return Ok(());
        }
        if !now.is_empty() {
            c.batch_execute(&format!("LOCK TABLE {now} IN EXCLUSIVE MODE"))?;
        }
        locked = now;
    }
    Err(diesel::result::Error::QueryBuilderError(
        format!("the tables of schema {schema} kept changing while they were being locked").into(),
    ))
}

/// The schema's name and the SQL that drops it with everything in it and recreates it with
/// the same owner and grants (`DROP SCHEMA public CASCADE` alone would lose both).
pub fn schema_rebuild_sql(conn: &mut Conn) -> diesel::QueryResult<(String, String)> {
    let c = pg(conn)?;
    let schema: TextRow = diesel::sql_query("SELECT current_schema()::text AS v").get_result(c)?;
    let owner: TextRow = diesel::sql_query(format!(
        "SELECT nspowner::regrole::text AS v FROM pg_namespace WHERE nspname = {}",
        quote_literal(&schema.v)
    ))
    .get_result(c)?;
    let grants: Vec<TextRow> = diesel::sql_query(format!(
        "SELECT format('GRANT %s ON SCHEMA %I TO %s%s', a.privilege_type, n.nspname, \
                CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(a.grantee::regrole::text) END, \
                CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END) AS v \
         FROM pg_namespace n, aclexplode(n.nspacl) a \
         WHERE n.nspname = {} AND a.grantee <> n.nspowner ORDER BY 1",
        quote_literal(&schema.v)
    ))
    .load(c)?;
    let name = quote_ident(&schema.v);
    // regrole::text is already quoted where it needs to be.
    let mut sql = format!(
        "DROP SCHEMA {name} CASCADE;\nCREATE SCHEMA {name};\nALTER SCHEMA {name} OWNER TO {};\n",
        owner.v
    );
    for grant in grants {
        sql.push_str(&grant.v);
        sql.push_str(";\n");
    }
    Ok((schema.v, sql))
}

/// Global ids of our prepared transactions on this database.
pub fn prepared_transactions(conn: &mut Conn) -> diesel::QueryResult<Vec<String>> {
    let sql = format!(
        "SELECT gid::text AS v FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE {} ORDER BY 1",
        quote_literal(&format!("{GID_PREFIX}%"))
    );
    Ok(diesel::sql_query(sql)
        .load::<TextRow>(pg(conn)?)?
        .into_iter()
        .map(|r| r.v)
        .collect())
}

pub fn commit_prepared(conn: &mut Conn, gid: &str) -> diesel::QueryResult<()> {
    conn.batch_execute(&format!("COMMIT PREPARED {}", quote_literal(gid)))
}

pub fn rollback_prepared(conn: &mut Conn, gid: &str) -> diesel::QueryResult<()> {
    conn.batch_execute(&format!("ROLLBACK PREPARED {}", quote_literal(gid)))
}

/// A `DO` block that aborts the transaction unless each table of `schema` holds the
/// expected number of rows (restore checks the manifest's counts before committing).
pub fn row_count_check_sql(schema: &str, expected: &[(String, i64)]) -> String {
    let mut sql = String::from("DO $orch$ BEGIN\n");
    for (table, n) in expected {
        let rel = format!("{}.{}", quote_ident(schema), quote_ident(table));
        let name = quote_literal(table).replace('%', "%%");
        sql.push_str(&format!(
            "IF (SELECT count(*) FROM {rel}) <> {n} THEN RAISE EXCEPTION '% holds % rows, the manifest says {n}', {name}, (SELECT count(*) FROM {rel}); END IF;\n"
        ));
    }
    sql.push_str("END $orch$;\n");
    sql
}

/// Exports the current transaction's snapshot for `pg_dump --snapshot`.
pub fn export_snapshot(conn: &mut Conn) -> diesel::QueryResult<String> {
    let row: TextRow =
        diesel::sql_query("SELECT pg_export_snapshot()::text AS v").get_result(pg(conn)?)?;
    Ok(row.v)
}

/// `PREPARE TRANSACTION`: the transaction survives this session (and a crash of it) until
/// `COMMIT PREPARED` or `ROLLBACK PREPARED`. The connection is no longer in a transaction
/// afterwards, in diesel's count too: diesel cannot be told a transaction ended other
/// than by its own COMMIT or ROLLBACK, so an empty transaction is opened behind the
/// prepared one and rolled back through diesel. The session can then go on (the run's
/// session goes on to clear the journal).
pub fn prepare(conn: &mut Conn, gid: &str) -> diesel::QueryResult<()> {
    conn.batch_execute(&format!(
        "PREPARE TRANSACTION {};\nBEGIN",
        quote_literal(gid)
    ))?;
    super::rollback(conn)
}

/// Bounds this session's waits for locks: a read that would wait on a lock (a reset
/// committing, a prepared transaction) fails instead of hanging.
pub fn set_lock_timeout(conn: &mut Conn, secs: u64) -> diesel::QueryResult<()> {
    conn.batch_execute(&format!("SET lock_timeout = '{}s'", secs.max(1)))
}

#[cfg(test)]
mod tests {
    use diesel::sql_types::{BigInt, Text};
    use diesel::{QueryableByName, RunQueryDsl};

    use crate::test_pg::TestServer;
    use crate::Conn;

    #[derive(QueryableByName)]
    struct Locked {
        #[diesel(sql_type = Text)]
        tables: String,
        #[diesel(sql_type = Text)]
        path: String,
        #[diesel(sql_type = BigInt)]
        plpgsql: i64,
    }

    fn locked(conn: &mut Conn) -> Locked {
        let Conn::Postgres(pg) = conn else {
            unreachable!()
        };
        diesel::sql_query(
            "SELECT COALESCE(string_agg(l.relation::regclass::text, ',' ORDER BY l.relation::regclass::text), '') AS tables,
                    current_setting('search_path') AS path,
                    (SELECT count(*) FROM pg_catalog.pg_backend_memory_contexts
                      WHERE name = 'PLpgSQL function hash') AS plpgsql
               FROM pg_catalog.pg_locks l
              WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation'
                AND l.mode = 'ExclusiveLock' AND l.granted",
        )
        .get_result(pg)
        .expect("locks")
    }

    /// The fence locks every table of the schema, partitions and inheriting children in
    /// other schemas included, creates a configured schema that is missing, and loads no
    /// PL/pgSQL for it.
    #[test]
    fn the_fence_locks_every_table_of_the_schema_and_creates_a_missing_one() {
        let Some(mut server) = TestServer::connect() else {
            return;
        };
        let name = format!("orch_fence_{}", std::process::id());
        let mut conn = server.database(
            &name,
            "CREATE SCHEMA s; CREATE SCHEMA other;
             CREATE TABLE s.a (id int); CREATE TABLE s.\"Odd name\" (id int);
             CREATE TABLE s.p (id int) PARTITION BY RANGE (id);
             CREATE TABLE s.p1 PARTITION OF s.p FOR VALUES FROM (0) TO (10);
             CREATE TABLE other.child () INHERITS (s.a);
             CREATE TABLE other.untouched (id int);
             CREATE VIEW s.v AS SELECT 1 AS one;",
        );
        super::begin_fenced(&mut conn, "s", 5).expect("fenced");
        let seen = locked(&mut conn);
        assert_eq!(
            seen.tables, "\"Odd name\",a,other.child,p,p1",
            "every table of s (the search path now), and what inherits from them, is locked"
        );
        assert_eq!(seen.path, "s");
        assert_eq!(seen.plpgsql, 0, "PL/pgSQL was loaded for the fence");
        crate::admin::rollback(&mut conn).expect("rollback");

        super::begin_fenced(&mut conn, "new schema", 5).expect("fenced");
        let seen = locked(&mut conn);
        assert_eq!(seen.tables, "", "a new schema holds nothing to lock");
        assert_eq!(seen.path, "\"new schema\"");
        crate::admin::commit(&mut conn).expect("commit");
        let Conn::Postgres(pg) = &mut conn else {
            unreachable!()
        };
        let made: Vec<Locked> = diesel::sql_query(
            "SELECT nspname::text AS tables, '' AS path, 0::bigint AS plpgsql
               FROM pg_catalog.pg_namespace WHERE nspname = 'new schema'",
        )
        .load(pg)
        .expect("schema");
        assert_eq!(made.len(), 1, "the missing schema was created");
    }
}
