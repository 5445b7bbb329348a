-- `orchestrator verify` streams datasets.owner_id and datasets.team_id in byte order
-- (COLLATE "C") to merge them with auth's users.id and teams.id. The indexes of the first
-- migration use the database collation, whose order differs from byte order; these make
-- the ordered read an index-only scan instead of a sort of the whole table.
CREATE INDEX datasets_owner_id_c_idx ON datasets (owner_id COLLATE "C");
CREATE INDEX datasets_team_id_c_idx ON datasets (team_id COLLATE "C") WHERE team_id IS NOT NULL;
