//! An application writing throughout a command: one row every 10 ms, each in its own
//! transaction, until told to stop. What it returns is the ids whose commit returned: the
//! rows that must never vanish, whatever the command does meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use shared::{Conn, DatabaseUrl};

/// A writer on `url`: `insert(id)` is the statement writing the row `id` (ids are `tag`
/// and a counter). A failed insert (waiting out a fence, or on a table just replaced) is
/// retried on a new connection; it was not committed.
pub fn spawn(
    url: DatabaseUrl,
    stop: Arc<AtomicBool>,
    tag: String,
    insert: impl Fn(&str) -> String + Send + 'static,
) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut committed = Vec::new();
        let mut conn: Option<Conn> = None;
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            if conn.is_none() {
                conn = Conn::establish("writer", &url).ok();
            }
            if let Some(c) = conn.as_mut() {
                let id = format!("{tag}{n}z");
                n += 1;
                match c.batch_execute(&insert(&id)) {
                    Ok(()) => committed.push(id),
                    Err(_) => conn = None,
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        committed
    })
}
