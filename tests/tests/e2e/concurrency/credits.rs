//! One user's credits consumed by many processes (and threads) at once: exactly the grant
//! is sold, never a credit twice, never below zero.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use auth_db::credits::{balance, ledger_sum};
use auth_db::users::{sign_up, NewUser};
use orch_tests::{count, for_each_backend, TestPair};
use shared::{catalog, Conn};

/// What one `credit_consumer` process reported.
#[derive(Debug, Default)]
struct Consumed {
    succeeded: i64,
    insufficient: i64,
    other: i64,
    balances: Vec<i64>,
}

/// Runs `processes` consumers of `threads` threads, each thread trying `attempts` times
/// to take one credit of `user`, all released at the same instant once every connection
/// is open. Returns their sum and every process's stderr.
fn consume_from_processes(
    pair: &TestPair,
    user: &str,
    processes: usize,
    threads: usize,
    attempts: usize,
) -> (Consumed, Vec<String>) {
    let url = pair.auth.url_string();
    let mut children = Vec::new();
    for p in 0..processes {
        let err_path = pair.path().join(format!("consumer-{user}-{p}.stderr"));
        let err_file = std::fs::File::create(&err_path).expect("stderr file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_credit_consumer"))
            .args([
                url.as_str(),
                user,
                "1",
                &attempts.to_string(),
                &threads.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err_file))
            .spawn()
            .expect("spawn credit_consumer");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        children.push((child, out_ready(&mut out, &err_path), out, err_path));
    }
    // Every process has its connections open: release them together.
    for (child, ..) in &mut children {
        let stdin = child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"go\n").expect("start signal");
        stdin.flush().expect("flush");
    }
    let mut total = Consumed::default();
    let mut stderrs = Vec::new();
    for (mut child, (), mut out, err_path) in children {
        let mut rest = String::new();
        out.read_to_string(&mut rest).expect("consumer stdout");
        let status = child.wait().expect("consumer");
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        assert!(
            status.success(),
            "credit_consumer failed ({status}): {stderr}"
        );
        let report: serde_json::Value = serde_json::from_str(rest.trim())
            .unwrap_or_else(|e| panic!("consumer output {rest:?}: {e}"));
        let n = |k: &str| {
            report[k]
                .as_i64()
                .unwrap_or_else(|| panic!("{k} in {report}"))
        };
        total.succeeded += n("succeeded");
        total.insufficient += n("insufficient");
        total.other += n("other");
        total.balances.extend(
            report["balances"]
                .as_array()
                .expect("balances")
                .iter()
                .map(|b| b.as_i64().expect("balance")),
        );
        stderrs.push(stderr);
    }
    (total, stderrs)
}

/// Waits for a consumer's `ready` line.
fn out_ready(out: &mut impl BufRead, err_path: &Path) {
    let mut line = String::new();
    out.read_line(&mut line).expect("consumer stdout");
    assert_eq!(
        line.trim(),
        "ready",
        "credit_consumer did not start: {}",
        std::fs::read_to_string(err_path).unwrap_or_default()
    );
}

/// Consumption rows (negative amounts) in the ledger of `user`.
fn consumption_rows(conn: &mut Conn, user: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = format!(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM credit_transactions \
         WHERE user_id = '{user}' AND amount < 0"
    );
    let row: N = shared::with_conn!(conn, |c| diesel::RunQueryDsl::get_result(
        diesel::sql_query(&sql),
        c
    ))
    .expect("count consumption rows");
    row.n
}

/// Signs up a user with `grant` credits, lets `processes` × `threads` consumers race for
/// them with `attempts` tries each, and checks that exactly the grant was sold.
fn sell_out(
    pair: &TestPair,
    conn: &mut Conn,
    email: &str,
    grant: i64,
    (processes, threads, attempts): (usize, usize, usize),
) {
    let tries = (processes * threads * attempts) as i64;
    assert!(grant < tries, "the consumers must want more than the grant");
    let user = sign_up(
        conn,
        &NewUser {
            email,
            name: Some("Shared wallet"),
        },
        grant,
    )
    .expect("sign up")
    .id;
    let rows_before = count(conn, "credit_transactions");
    let started = Instant::now();
    let (got, stderrs) = consume_from_processes(pair, &user, processes, threads, attempts);
    let millis = started.elapsed().as_millis();
    let left = balance(conn, &user).expect("balance");
    let ledger = ledger_sum(conn, &user).expect("ledger sum");
    let consumed_rows = consumption_rows(conn, &user);
    eprintln!(
        "{}: {processes} processes x {threads} threads x {attempts} attempts on a grant of {grant}: \
         {} sold, {} refused, {} other errors; balance {left}, ledger sum {ledger}, {consumed_rows} \
         consumption rows; {millis} ms",
        pair.backend, got.succeeded, got.insufficient, got.other
    );
    let context = format!(
        "{} ({processes}x{threads}x{attempts}, grant {grant}); consumers' stderr: {}",
        pair.backend,
        stderrs.concat()
    );
    assert_eq!(
        got.succeeded + got.insufficient + got.other,
        tries,
        "every attempt is accounted for: {context}"
    );
    // Errors other than "insufficient" (a busy database) may only cost attempts, never
    // sell a credit twice; with this many spare attempts, all of the grant is sold.
    assert_eq!(got.succeeded, grant, "exactly the grant is sold: {context}");
    assert_eq!(left, 0, "the balance ends at zero: {context}");
    assert_eq!(ledger, left, "the ledger sums to the balance: {context}");
    assert_eq!(
        consumed_rows, grant,
        "one consumption row per sale: {context}"
    );
    assert_eq!(
        count(conn, "credit_transactions") - rows_before,
        grant,
        "no other ledger row: {context}"
    );
    // Each sale left a different balance, from grant - 1 down to 0: no two consumers
    // ever took the same credit, and none saw a balance below zero.
    let mut balances = got.balances;
    balances.sort_unstable();
    let expected: Vec<i64> = (0..grant).collect();
    assert_eq!(
        balances, expected,
        "each sale saw its own balance: {context}"
    );
    assert_eq!(
        got.other, 0,
        "no attempt may fail other than for insufficient credits: {context}"
    );
}

#[test]
fn processes_and_threads_never_oversell_one_balance() {
    for_each_backend("conc_credits", |pair| {
        let mut conn = pair.auth.connect();
        shared::migrations::run_pending(&mut conn, &auth_db::STORE, |_| {}).expect("migrate");
        // 8 processes of one connection each, 40 attempts each: 320 tries for 200.
        sell_out(pair, &mut conn, "procs@example.com", 200, (8, 1, 40));
        // Threads and processes mixed: 4 processes of 4 threads, 20 attempts each.
        sell_out(pair, &mut conn, "mixed@example.com", 250, (4, 4, 20));
        // Every credit of every user is accounted for in the ledger.
        assert_eq!(count(&mut conn, "user_credits"), 2);
        let stray = catalog::row_counts(&mut conn, &["users".to_string()]).expect("count");
        assert_eq!(stray, [("users".to_string(), 2)]);
    });
}
