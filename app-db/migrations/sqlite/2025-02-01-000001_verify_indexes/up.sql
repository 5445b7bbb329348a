-- The PostgreSQL history adds byte-order (COLLATE "C") indexes here for
-- `orchestrator verify`. SQLite's default BINARY collation already is byte order, and
-- the first migration's indexes on owner_id and team_id serve the ordered reads, so
-- only the partial index skipping NULL team_ids is added, as on PostgreSQL.
CREATE INDEX datasets_team_id_nn_idx ON datasets (team_id) WHERE team_id IS NOT NULL;
