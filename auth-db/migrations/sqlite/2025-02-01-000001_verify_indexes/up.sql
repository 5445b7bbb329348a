-- The PostgreSQL history adds byte-order (COLLATE "C") indexes here for
-- `orchestrator verify`. SQLite's default BINARY collation already is byte order, and the
-- primary keys' own indexes serve the ordered reads, so nothing is needed; the migration
-- exists to keep both histories in step.
SELECT 1;
