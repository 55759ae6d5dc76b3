-- Version 2: cluster membership (one row per role a host runs; a heartbeat moves its expiry on).
CREATE TABLE IF NOT EXISTS cluster_membership (
    role            TEXT    NOT NULL,
    host_id         TEXT    NOT NULL,
    rpc_address     TEXT    NOT NULL,
    session_start   INTEGER NOT NULL,
    last_heartbeat  INTEGER NOT NULL,
    expiry          INTEGER NOT NULL,
    PRIMARY KEY (role, host_id)
) WITHOUT ROWID;
