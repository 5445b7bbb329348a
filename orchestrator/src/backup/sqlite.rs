//! A SQLite store's backup: `VACUUM INTO` a copy, checked with `quick_check`.

use std::path::Path;

use shared::store::Store;
use shared::{admin, Conn, DatabaseUrl};

use super::{read_contents, Contents};

/// The backup file's extension.
pub(super) const SUFFIX: &str = "sqlite3";

/// `VACUUM INTO` writes one consistent snapshot of the file; the manifest's counts are
/// read from that copy, so they describe exactly what it holds whatever was committed
/// meanwhile.
pub(super) fn write(store: &Store, conn: &mut Conn, path: &Path) -> Result<Contents, String> {
    admin::vacuum_into(conn, path).map_err(|e| format!("VACUUM INTO {}: {e}", path.display()))?;
    let copy = DatabaseUrl::parse(&path.to_string_lossy()).map_err(|e| e.to_string())?;
    let mut check = Conn::establish(store.name, &copy).map_err(|e| e.to_string())?;
    admin::sqlite_quick_check(&mut check)
        .map_err(|e| format!("the copy {} is damaged: {e}", path.display()))?;
    read_contents(store, &mut check)
}
