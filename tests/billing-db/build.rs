// As in every store crate: a new or removed migration folder must rebuild the crate, and
// each migration's SQL is embedded for verify's checksums (store-core/build/migration_sql.rs).

include!("../../store-core/build/migration_sql.rs");

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=migrations");
    write_migration_sql()
}
