// embed_migrations! reads migrations/ at compile time; a new or removed migration folder
// must rebuild the crate, which cargo would not notice by itself. The text of each
// `up.sql` is embedded too (see store-core/build/migration_sql.rs), for verify's checksums.

include!("../store-core/build/migration_sql.rs");

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=migrations");
    write_migration_sql()
}
