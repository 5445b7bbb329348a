-- owner_id and team_id point into the auth database, which no foreign key can reach;
-- `orchestrator verify` checks them. The indexes let it stream the ids in order.
CREATE TABLE datasets (
    id          TEXT PRIMARY KEY,
    owner_id    TEXT NOT NULL,
    team_id     TEXT,
    name        TEXT NOT NULL,
    description TEXT,
    created_at  TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    updated_at  TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);
CREATE INDEX datasets_owner_id_idx ON datasets (owner_id);
CREATE INDEX datasets_team_id_idx ON datasets (team_id);
