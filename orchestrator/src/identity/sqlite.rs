//! The SQLite half of the identity checks: one file is one database whatever the path's
//! spelling (`./`, `..`, a symlink, a hard link), so files are compared by device and
//! inode; a file not created yet, by its folder's real path and its name. The evidence
//! is read only from a file that exists: opening one would create it.

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use shared::store::Store;
use shared::{Conn, DatabaseUrl};

use super::Evidence;
use crate::exit::{CliError, CliResult};

/// How a store's file is told apart from another's.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FileId {
    /// An existing file: its device and inode.
    Inode(u64, u64),
    /// A file to be created: where it will be, every symlink on the way followed.
    Pending(PathBuf),
    /// `:memory:`, a new database on every connection.
    Memory,
}

/// Symlinks followed before giving up (a loop), as the kernel's own limit.
const MAX_LINKS: usize = 40;

fn file_id(path: &Path) -> FileId {
    if path.as_os_str() == ":memory:" {
        return FileId::Memory;
    }
    if let Ok(meta) = std::fs::metadata(path) {
        return FileId::Inode(meta.dev(), meta.ino());
    }
    FileId::Pending(where_it_will_be(path))
}

/// The real path a file that does not exist yet will get: a dangling symlink followed to
/// its target (SQLite creates the file there), the longest part of the path that exists
/// made real by the kernel (`canonicalize`), and the rest appended by name.
fn where_it_will_be(path: &Path) -> PathBuf {
    let mut path = std::env::current_dir().unwrap_or_default().join(path);
    for _ in 0..MAX_LINKS {
        let Ok(target) = std::fs::read_link(&path) else {
            break;
        };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        path = base.join(target);
    }
    let parts: Vec<Component<'_>> = path.components().collect();
    for cut in (1..=parts.len()).rev() {
        let existing: PathBuf = parts[..cut].iter().collect();
        let Ok(mut real) = std::fs::canonicalize(&existing) else {
            continue;
        };
        for part in &parts[cut..] {
            match part {
                Component::CurDir => {}
                Component::ParentDir => {
                    real.pop();
                }
                other => real.push(other.as_os_str()),
            }
        }
        return real;
    }
    path
}

/// Exit 2 when two stores' paths lead to one file.
pub(super) fn refuse_one_file(files: &[(&'static Store, &DatabaseUrl, &Path)]) -> CliResult {
    let ids: Vec<FileId> = files.iter().map(|(_, _, p)| file_id(p)).collect();
    for (i, a) in ids.iter().enumerate() {
        for (j, b) in ids.iter().enumerate().skip(i + 1) {
            if *a == FileId::Memory || a != b {
                continue;
            }
            let (first, first_url, first_path) = files[i];
            let (second, second_url, _) = files[j];
            let real = std::fs::canonicalize(first_path)
                .map(|p| format!(", which is {}", p.display()))
                .unwrap_or_default();
            return Err(CliError::usage(format!(
                "the {} and {} stores are the same SQLite file ({}: {}, {}: {}{real}): each \
                 store needs a file of its own; nothing was changed. Check {} and {}",
                first.name,
                second.name,
                first.name,
                first_url.redacted(),
                second.name,
                second_url.redacted(),
                super::flag(first.name),
                super::flag(second.name),
            )));
        }
    }
    Ok(())
}

/// What a store's file holds, or `None` when it does not exist yet.
pub(super) fn evidence(
    store: &'static Store,
    all: &[&'static Store],
    url: &DatabaseUrl,
    path: &Path,
) -> CliResult<Option<Evidence>> {
    if !path.is_file() {
        return Ok(None);
    }
    let mut conn = Conn::establish(store.name, url)?;
    let evidence = super::read_evidence(&mut conn, store, all).map_err(|e| {
        CliError::from(shared::DbError::Query {
            store: store.name.to_string(),
            url: url.redacted().to_string(),
            action: "listing tables and migrations".into(),
            reason: e.to_string(),
        })
    })?;
    Ok(Some(evidence))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_by_any_name_is_one_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("real");
        let file = root.join("a.sqlite3");
        std::fs::write(&file, b"").expect("file");
        std::fs::create_dir(root.join("sub")).expect("sub");
        std::os::unix::fs::symlink(&file, root.join("link.sqlite3")).expect("symlink");
        std::fs::hard_link(&file, root.join("hard.sqlite3")).expect("hard link");
        let id = file_id(&file);
        for other in [
            root.join("./a.sqlite3"),
            root.join("sub/../a.sqlite3"),
            root.join("link.sqlite3"),
            root.join("hard.sqlite3"),
        ] {
            assert_eq!(file_id(&other), id, "{}", other.display());
        }
        assert_ne!(file_id(&root.join("b.sqlite3")), id);
    }

    #[test]
    fn files_not_created_yet_compare_by_where_they_will_be() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("real");
        std::fs::create_dir(root.join("real")).expect("real dir");
        std::os::unix::fs::symlink(root.join("real"), root.join("alias")).expect("dir link");
        std::os::unix::fs::symlink(root.join("real/x.sqlite3"), root.join("dangling.sqlite3"))
            .expect("dangling");
        let id = file_id(&root.join("real/x.sqlite3"));
        assert_eq!(id, FileId::Pending(root.join("real/x.sqlite3")));
        for other in [
            root.join("alias/x.sqlite3"),
            root.join("alias/../real/./x.sqlite3"),
            root.join("dangling.sqlite3"),
        ] {
            assert_eq!(file_id(&other), id, "{}", other.display());
        }
        // Folders that do not exist yet either.
        assert_eq!(
            file_id(&root.join("alias/new/y.sqlite3")),
            FileId::Pending(root.join("real/new/y.sqlite3"))
        );
        assert_ne!(file_id(&root.join("real/y.sqlite3")), id);
        assert_eq!(file_id(Path::new(":memory:")), FileId::Memory);
    }
}
