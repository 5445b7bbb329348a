//! A PostgreSQL store's backup: `pg_dump` in custom format from one exported snapshot,
//! whose counts go in the manifest, read back with `pg_restore --list`.

use std::path::Path;

use shared::store::Store;
use shared::{admin, Conn, DatabaseUrl};

use super::{read_contents, Contents};
use crate::pgtools::{self, PgTools};

/// The backup file's extension.
pub(super) const SUFFIX: &str = "dump";

pub(super) fn write(
    store: &Store,
    url: &DatabaseUrl,
    conn: &mut Conn,
    path: &Path,
) -> Result<Contents, String> {
    let major = admin::server_major(conn).map_err(|e| e.to_string())?;
    let tools = PgTools::find(major)?;
    // The counts in the manifest and the dump come from one exported snapshot, so they
    // agree even if the application writes meanwhile. (A rebuild's fenced transaction
    // cannot export it itself: PostgreSQL refuses to PREPARE a transaction that exported
    // a snapshot. Taken here after the fence, it sees the same: writers wait.)
    conn.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .map_err(|e| e.to_string())?;
    let result = (|| -> Result<_, String> {
        let snapshot = admin::export_snapshot(conn).map_err(|e| e.to_string())?;
        let contents = read_contents(store, conn)?;
        let mut dump = tools.connected("pg_dump", url);
        dump.args([
            "--format=custom",
            "--no-owner",
            &pgtools::lock_wait_timeout_arg(),
            "--snapshot",
            &snapshot,
            "--file",
        ])
        .arg(path);
        pgtools::run(dump, "pg_dump", url)?;
        crate::fault::pause_at("pause-after-dump", store.name);
        Ok(contents)
    })();
    let _ = conn.batch_execute("COMMIT");
    let contents = result?;
    let mut list = tools.command("pg_restore");
    list.arg("--list").arg(path);
    pgtools::run(list, "pg_restore --list (reading the dump back)", url)?;
    Ok(contents)
}
