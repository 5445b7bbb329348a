//! Consumes credits of one user from its own process, for the cross-process concurrency
//! test (`tests/tests/concurrency.rs`).
//!
//! ```text
//! credit_consumer URL USER_ID AMOUNT COUNT [THREADS]
//! ```
//!
//! Opens one connection per thread (default one thread), prints `ready` on stdout and
//! waits for a line on stdin, so that a test can release many processes at the same
//! instant; then every thread calls `auth_db::credits::consume` COUNT times. It prints
//! one JSON line: how many calls succeeded, how many were refused for insufficient
//! credits, how many failed otherwise (a busy database, say; those are also printed on
//! stderr), and the balance each success returned. Exits 0 unless it could not start.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use auth_db::credits::consume;
use auth_db::AuthError;
use shared::{Conn, DatabaseUrl};

#[derive(Default)]
struct Tally {
    succeeded: u64,
    insufficient: u64,
    other: u64,
    /// The balance each successful consume left, in the order this thread saw them.
    balances: Vec<i64>,
    errors: Vec<String>,
}

fn usage() -> ExitCode {
    eprintln!("usage: credit_consumer URL USER_ID AMOUNT COUNT [THREADS]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 || args.len() > 5 {
        return usage();
    }
    let url = match DatabaseUrl::parse(&args[0]) {
        Ok(url) => url,
        Err(e) => {
            eprintln!("credit_consumer: bad URL: {e}");
            return ExitCode::from(2);
        }
    };
    let user_id = args[1].as_str();
    let (Ok(amount), Ok(count)) = (args[2].parse::<i64>(), args[3].parse::<u64>()) else {
        return usage();
    };
    let threads = match args.get(4).map(|t| t.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => return usage(),
    };

    // Every connection is open before the start signal, so the calls race, not the
    // connects.
    let mut conns = Vec::with_capacity(threads);
    for _ in 0..threads {
        match Conn::establish("auth", &url) {
            Ok(conn) => conns.push(conn),
            Err(e) => {
                eprintln!("credit_consumer: {e}");
                return ExitCode::from(4);
            }
        }
    }
    println!("ready");
    let _ = std::io::stdout().flush();
    let mut go = String::new();
    if std::io::stdin().lock().read_line(&mut go).is_err() {
        eprintln!("credit_consumer: no start signal on stdin");
        return ExitCode::from(2);
    }

    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let workers: Vec<_> = conns
            .into_iter()
            .map(|mut conn| {
                scope.spawn(move || {
                    let mut tally = Tally::default();
                    for _ in 0..count {
                        match consume(&mut conn, user_id, amount, "concurrency test") {
                            Ok(balance) => {
                                tally.succeeded += 1;
                                tally.balances.push(balance);
                            }
                            Err(AuthError::InsufficientCredits { .. }) => tally.insufficient += 1,
                            Err(e) => {
                                tally.other += 1;
                                tally.errors.push(e.to_string());
                            }
                        }
                    }
                    tally
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| match w.join() {
                Ok(tally) => tally,
                Err(_) => Tally {
                    other: count,
                    errors: vec!["a consumer thread panicked".into()],
                    ..Tally::default()
                },
            })
            .collect()
    });

    let mut total = Tally::default();
    for t in tallies {
        total.succeeded += t.succeeded;
        total.insufficient += t.insufficient;
        total.other += t.other;
        total.balances.extend(t.balances);
        total.errors.extend(t.errors);
    }
    for e in &total.errors {
        eprintln!("credit_consumer: {e}");
    }
    println!(
        "{}",
        serde_json::json!({
            "succeeded": total.succeeded,
            "insufficient": total.insufficient,
            "other": total.other,
            "balances": total.balances,
        })
    );
    ExitCode::SUCCESS
}
