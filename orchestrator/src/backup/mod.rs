//! Backups: `pg_dump` custom format (PostgreSQL) or `VACUUM INTO` (SQLite), one file per
//! store, plus `manifest.json` naming the store, its backend, redacted URL, database,
//! applied migrations, rows per table and the file's sha256. A dump is read back
//! (`pg_restore --list`, SQLite `quick_check`) before anything relies on it.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::inventory::Inventory;
use shared::store::Store;
use shared::{catalog, Backend, Conn, DatabaseUrl};

mod postgres;
pub mod sets;
mod sqlite;

pub const MANIFEST: &str = "manifest.json";
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub created_at: String,
    pub tool_version: String,
    pub stores: Vec<StoreBackup>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreBackup {
    pub store: String,
    pub backend: String,
    pub url: String,
    pub database: String,
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
    pub applied_migrations: Vec<String>,
    pub row_counts: BTreeMap<String, i64>,
}

impl StoreBackup {
    pub fn total_rows(&self) -> i64 {
        self.row_counts.values().sum()
    }
}

/// A fresh folder `<backup_dir>/<UTC time>/` for one backup set, created.
pub fn new_backup_dir(base: &Path) -> std::io::Result<PathBuf> {
    let dir = unused_backup_dir(base);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The name a new backup set would get, not created yet (a rebuild creates it only once
/// a store has something to keep).
pub fn unused_backup_dir(base: &Path) -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
    let mut dir = base.join(&stamp);
    let mut n = 1;
    while dir.exists() {
        dir = base.join(format!("{stamp}-{n}"));
        n += 1;
    }
    dir
}

/// Backs up one store into `dir`, returning its manifest entry. The dump and its counts
/// come from one snapshot, taken when the backup starts: under a rebuild's write fence
/// that is exactly what the rebuild drops. A failed backup leaves no file behind.
pub fn backup_store(
    store: &Store,
    url: &DatabaseUrl,
    conn: &mut Conn,
    dir: &Path,
) -> Result<StoreBackup, String> {
    let file = match url.backend() {
        Backend::Postgres => format!("{}.{}", store.name, postgres::SUFFIX),
        Backend::Sqlite => format!("{}.{}", store.name, sqlite::SUFFIX),
    };
    let path = dir.join(&file);
    let written = match url.backend() {
        Backend::Postgres => postgres::write(store, url, conn, &path),
        Backend::Sqlite => sqlite::write(store, conn, &path),
    };
    let (applied, counts) = written.inspect_err(|_| {
        // A full disk must not be left fuller by what failed to fit.
        let _ = std::fs::remove_file(&path);
    })?;
    let (sha256, bytes) =
        sha256_of(&path).map_err(|e| format!("cannot read back {}: {e}", path.display()))?;
    Ok(StoreBackup {
        store: store.name.to_string(),
        backend: url.backend().as_str().to_string(),
        url: url.redacted().to_string(),
        database: url.database_name(),
        file,
        sha256,
        bytes,
        applied_migrations: applied,
        row_counts: counts,
    })
}

type Contents = (Vec<String>, BTreeMap<String, i64>);

/// The applied versions and true row counts (row security off) of the connection's view.
fn read_contents(store: &Store, conn: &mut Conn) -> Result<Contents, String> {
    let inventory = Inventory::read(conn, store).map_err(|e| e.to_string())?;
    let applied = catalog::applied_versions(conn).map_err(|e| e.to_string())?;
    Ok((applied, inventory.table_rows().into_iter().collect()))
}

pub fn sha256_of(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        hasher.update(&buf[..n]);
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((hex, bytes))
}

/// Writes the manifest atomically (temp file, fsync, rename).
pub fn write_manifest(dir: &Path, manifest: &Manifest) -> std::io::Result<()> {
    let tmp = dir.join(".manifest.json.tmp");
    let json = serde_json::to_vec_pretty(manifest).map_err(std::io::Error::from)?;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(MANIFEST))
}

pub fn new_manifest(stores: Vec<StoreBackup>) -> Manifest {
    Manifest {
        format: FORMAT,
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        stores,
    }
}

/// Reads and checks a backup folder before anything is touched: the manifest parses, it
/// covers the wanted stores, and every file has the recorded sha256.
pub fn load_checked(dir: &Path, wanted: &[&str]) -> Result<Manifest, String> {
    let path = dir.join(MANIFEST);
    if dir.is_dir() && !path.exists() {
        // The manifest is written last: a folder without one is a backup that did not
        // finish (interrupted, or failed before its files could be removed).
        return Err(format!(
            "{} is an incomplete backup set: it has no {MANIFEST} (a backup that was \
             interrupted or failed), so it cannot be restored; `orchestrator backups list` \
             shows the complete ones",
            dir.display()
        ));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a valid manifest: {e}", path.display()))?;
    if manifest.format != FORMAT {
        return Err(format!(
            "{} has format {}, this build reads {FORMAT}",
            path.display(),
            manifest.format
        ));
    }
    for name in wanted {
        let entry = manifest
            .stores
            .iter()
            .find(|s| s.store == *name)
            .ok_or_else(|| {
                let has: Vec<&str> = manifest.stores.iter().map(|s| s.store.as_str()).collect();
                format!(
                    "{} holds no backup of the {name} store (it holds: {})",
                    dir.display(),
                    has.join(", ")
                )
            })?;
        if entry.file.contains('/') || entry.file.contains("..") {
            return Err(format!(
                "{}: file name {:?} is not a plain name",
                path.display(),
                entry.file
            ));
        }
        let file = dir.join(&entry.file);
        let (sha, _) =
            sha256_of(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        if sha != entry.sha256 {
            return Err(format!(
                "{} is damaged: its sha256 does not match the manifest",
                file.display()
            ));
        }
    }
    Ok(manifest)
}

/// Backs up `stores` into a new folder under `base`; returns the folder.
pub fn write_set(
    ctx: &crate::context::Context,
    stores: &[&'static shared::Store],
    base: &std::path::Path,
) -> crate::exit::CliResult<PathBuf> {
    let dir = new_backup_dir(base).map_err(|e| {
        crate::exit::CliError::new(
            crate::exit::Exit::Database,
            anyhow::anyhow!(
                "cannot create a backup folder under {}: {e}",
                base.display()
            ),
        )
    })?;
    let _partial = crate::interrupt::writing_set(&dir);
    // The stores are dumped at once, each on its own connection (and pg_dump process).
    let dir_ref = &dir;
    let entries: crate::exit::CliResult<Vec<StoreBackup>> =
        crate::context::all_at_once(stores, "backup", |store| {
            let url = ctx.url(store)?;
            let mut conn = ctx.session(store)?;
            showing_bytes(ctx, store.name, dir_ref, || {
                backup_store(store, url, &mut conn, dir_ref)
            })
            .map_err(|e| {
                crate::exit::CliError::new(
                    crate::exit::Exit::Database,
                    anyhow::anyhow!(
                        "{} database at {url}: backup failed: {e}; nothing was changed",
                        store.name
                    ),
                )
            })
        });
    let written = entries.and_then(|entries| {
        write_manifest(&dir, &new_manifest(entries)).map_err(|e| {
            crate::exit::CliError::new(
                crate::exit::Exit::Database,
                anyhow::anyhow!("cannot write {}: {e}", dir.join(MANIFEST).display()),
            )
        })
    });
    if written.is_err() {
        remove_set(&dir);
    }
    written.map(|()| dir)
}

/// Runs `work` (writing `store`'s file into the set `dir`) while `store`'s progress line
/// shows how far the file has grown and how fast.
pub fn showing_bytes<T>(
    ctx: &crate::context::Context,
    store: &str,
    dir: &Path,
    work: impl FnOnce() -> T,
) -> T {
    let done = std::sync::atomic::AtomicBool::new(false);
    let prefix = format!("{store}.");
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let started = std::time::Instant::now();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let bytes: u64 = std::fs::read_dir(dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .filter_map(|e| e.metadata().ok().map(|m| m.len()))
                    .sum();
                ctx.step(
                    store,
                    crate::progress::transfer(
                        &format!("backing up to {}", dir.display()),
                        bytes,
                        None,
                        started,
                    ),
                );
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        });
        let out = work();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        out
    })
}

/// Removes a backup set that failed part way: the store files written before the
/// failure are no backup without their manifest, and only fill the disk.
pub fn remove_set(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not remove a partial backup set");
    }
}
