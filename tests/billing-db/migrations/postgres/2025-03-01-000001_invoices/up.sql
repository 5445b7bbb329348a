-- user_id points into the auth database, which no foreign key can reach; `orchestrator
-- verify` checks it, streaming the ids in byte order through the COLLATE "C" index.
CREATE TABLE invoices (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    amount_cents BIGINT NOT NULL CHECK (amount_cents >= 0),
    issued_at    TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);
CREATE INDEX invoices_user_id_c_idx ON invoices (user_id COLLATE "C");
