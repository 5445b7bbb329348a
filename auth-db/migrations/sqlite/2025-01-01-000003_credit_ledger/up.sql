-- The credit ledger. A balance never goes below zero (CHECK), and deleting a team that
-- still pools someone's credits is refused (NO ACTION) rather than silently orphaning them.
CREATE TABLE user_credits (
    id         TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    team_id    TEXT REFERENCES teams (id) ON DELETE NO ACTION,
    credits    BIGINT NOT NULL DEFAULT 0 CHECK (credits >= 0),
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX user_credits_team_id_idx ON user_credits (team_id);

CREATE TABLE credit_transactions (
    id         TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    team_id    TEXT REFERENCES teams (id) ON DELETE SET NULL,
    amount     BIGINT NOT NULL,
    reason     TEXT,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX credit_transactions_user_id_idx ON credit_transactions (user_id);
CREATE INDEX credit_transactions_team_id_idx ON credit_transactions (team_id);

CREATE TABLE api_key_credits (
    id         TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    team_id    TEXT REFERENCES teams (id) ON DELETE CASCADE,
    api_key_id TEXT,
    credits    BIGINT NOT NULL DEFAULT 0 CHECK (credits >= 0),
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX api_key_credits_user_id_idx ON api_key_credits (user_id);
CREATE INDEX api_key_credits_team_id_idx ON api_key_credits (team_id);
