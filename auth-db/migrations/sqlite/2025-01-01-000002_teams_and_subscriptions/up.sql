CREATE TABLE teams (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    owner_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX teams_owner_id_idx ON teams (owner_id);

-- reference_id is a user's or a team's id, so it carries no foreign key.
CREATE TABLE subscriptions (
    id                 TEXT PRIMARY KEY NOT NULL,
    reference_id       TEXT NOT NULL,
    plan               TEXT NOT NULL,
    status             TEXT NOT NULL,
    stripe_customer_id TEXT,
    period_start       TIMESTAMP,
    period_end         TIMESTAMP,
    created_at         TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX subscriptions_reference_id_idx ON subscriptions (reference_id);
