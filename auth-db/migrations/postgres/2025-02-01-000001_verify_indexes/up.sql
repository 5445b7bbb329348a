-- `orchestrator verify` streams users.id and teams.id in byte order (COLLATE "C") to
-- merge them with the app database's references. The primary keys use the database
-- collation, whose order differs from byte order, so these indexes make that an ordered
-- index-only scan instead of a sort of the whole table.
CREATE INDEX users_id_c_idx ON users (id COLLATE "C");
CREATE INDEX teams_id_c_idx ON teams (id COLLATE "C");
