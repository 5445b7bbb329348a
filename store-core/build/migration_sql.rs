// Included by the store crates' build scripts: lists each backend's `up.sql` files so that
// the crate can embed their text next to diesel's embedded migrations. diesel keeps the
// SQL of an embedded migration private, and verify needs it to checksum what was applied;
// revert needs each `down.sql` to print it and to find out what it would destroy.

/// Writes `$OUT_DIR/migration_sql.rs` with `POSTGRES_SQL` and `SQLITE_SQL`, each a slice
/// of `store_core::store::MigrationSql`, oldest first, and `POSTGRES_SQUASH` and
/// `SQLITE_SQUASH`, each backend's squash record, and `POSTGRES_DEFINITIONS`.
fn write_migration_sql() -> std::io::Result<()> {
    let manifest = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(std::io::Error::other)?);
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").map_err(std::io::Error::other)?);
    let mut code = String::new();
    for (constant, backend) in [("POSTGRES_SQL", "postgres"), ("SQLITE_SQL", "sqlite")] {
        let dir = manifest.join("migrations").join(backend);
        let mut entries: Vec<(String, std::path::PathBuf, Option<std::path::PathBuf>)> = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let up = entry.path().join("up.sql");
            if entry.file_type()?.is_dir() && up.is_file() {
                // A migration without down.sql is one diesel cannot revert either.
                let down = Some(entry.path().join("down.sql")).filter(|p| p.is_file());
                entries.push((entry.file_name().to_string_lossy().into_owned(), up, down));
            }
        }
        entries.sort();
        code.push_str(&format!(
            "/// The `up.sql` text of each {backend} migration, oldest first.\n\
             pub const {constant}: &[store_core::store::MigrationSql] = &[\n"
        ));
        for (name, up, down) in entries {
            let down = match down {
                Some(down) => format!("Some(include_str!({:?}))", down.display().to_string()),
                None => "None".to_string(),
            };
            code.push_str(&format!(
                "    store_core::store::MigrationSql {{ name: {name:?}, up: include_str!({:?}), down: {down} }},\n",
                up.display().to_string()
            ));
        }
        code.push_str("];\n");
        // The squash record travels inside the binary too: a deployed binary with no
        // source tree must recognise a database that ran the history it replaced.
        let squash = dir.join("squash.json");
        let squash_constant = constant.replace("_SQL", "_SQUASH");
        let value = if squash.is_file() {
            format!("Some(include_str!({:?}))", squash.display().to_string())
        } else {
            "None".to_string()
        };
        code.push_str(&format!(
            "/// The {backend} history's squash record (`squash.json`), if it was squashed.\n\
             pub const {squash_constant}: Option<&str> = {value};\n"
        ));
    }
    // The exact SQL the PostgreSQL history makes, recorded by `orchestrator lint --write`
    // (see `shared::repair::recorded`): a repair writes it without a scratch database.
    let definitions = manifest.join("migrations").join("postgres.definitions.json");
    let value = if definitions.is_file() {
        format!("Some(include_str!({:?}))", definitions.display().to_string())
    } else {
        "None".to_string()
    };
    code.push_str(&format!(
        "/// The PostgreSQL history's recorded definitions, if they were recorded.\n\
         pub const POSTGRES_DEFINITIONS: Option<&str> = {value};\n"
    ));
    std::fs::write(out.join("migration_sql.rs"), code)
}
