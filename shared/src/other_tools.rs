//! Tables other migration tools keep their own history in. A database another tool built
//! holds one of them beside its tables: `adopt` leaves it alone, names it, and does not
//! count it as a difference from this tool's migrations.

/// `(table, the tool that keeps it)`.
const HISTORY_TABLES: &[(&str, &str)] = &[
    ("__drizzle_migrations", "Drizzle"),
    ("_prisma_migrations", "Prisma"),
    ("alembic_version", "Alembic (SQLModel, SQLAlchemy)"),
    ("flyway_schema_history", "Flyway"),
    ("schema_migrations", "Rails, golang-migrate or dbmate"),
    ("ar_internal_metadata", "Rails"),
    ("knex_migrations", "Knex"),
    ("knex_migrations_lock", "Knex"),
    ("SequelizeMeta", "Sequelize"),
    ("__EFMigrationsHistory", "Entity Framework"),
    ("_sqlx_migrations", "sqlx"),
    ("refinery_schema_history", "refinery"),
    ("seaql_migrations", "SeaORM"),
    ("goose_db_version", "goose"),
    ("kysely_migration", "Kysely"),
    ("kysely_migration_lock", "Kysely"),
    ("databasechangelog", "Liquibase"),
    ("databasechangeloglock", "Liquibase"),
    ("django_migrations", "Django"),
];

/// The tool whose history `table` is, if it is one of [`HISTORY_TABLES`].
pub fn history_of(table: &str) -> Option<&'static str> {
    HISTORY_TABLES
        .iter()
        .find(|(name, _)| *name == table)
        .map(|(_, tool)| *tool)
}

#[cfg(test)]
mod tests {
    use super::history_of;

    #[test]
    fn known_history_tables_name_their_tool_and_others_none() {
        assert_eq!(history_of("_prisma_migrations"), Some("Prisma"));
        assert_eq!(history_of("__drizzle_migrations"), Some("Drizzle"));
        assert_eq!(history_of("users"), None);
        // Names are exact: a table of the product called `migrations_archive` is data.
        assert_eq!(history_of("migrations_archive"), None);
    }
}
