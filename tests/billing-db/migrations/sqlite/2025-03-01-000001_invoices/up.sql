-- user_id points into the auth database, which no foreign key can reach; `orchestrator
-- verify` checks it.
CREATE TABLE invoices (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL,
    amount_cents BIGINT NOT NULL CHECK (amount_cents >= 0),
    issued_at    TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX invoices_user_id_c_idx ON invoices (user_id);
