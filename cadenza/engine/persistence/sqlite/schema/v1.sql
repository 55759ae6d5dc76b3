-- cadenza SQLite schema, version 1.
--
-- Applied inside one BEGIN IMMEDIATE transaction when the database has no schema_version table.
-- Every statement is idempotent so two processes racing to initialise the same file both succeed.
-- Tables that carry ~1 KB blobs keep a rowid (WITHOUT ROWID tables want rows well under 1/20 of a
-- page); small, hot pointer rows are WITHOUT ROWID so a lookup is one b-tree descent.

CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER NOT NULL PRIMARY KEY,
    applied_at  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS shards (
    shard_id      INTEGER NOT NULL PRIMARY KEY,
    range_id      INTEGER NOT NULL,
    owner         TEXT    NOT NULL,
    ack_levels    TEXT    NOT NULL,   -- JSON object: queue name -> ack level
    updated_time  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS executions (
    shard_id            INTEGER NOT NULL,
    namespace_id        TEXT    NOT NULL,
    workflow_id         TEXT    NOT NULL,
    run_id              TEXT    NOT NULL,
    state               INTEGER NOT NULL,
    status              INTEGER NOT NULL,
    next_event_id       INTEGER NOT NULL,
    db_version          INTEGER NOT NULL,
    last_write_version  INTEGER NOT NULL,
    start_version       INTEGER NOT NULL,
    start_request_id    TEXT    NOT NULL,
    data                BLOB    NOT NULL,
    PRIMARY KEY (shard_id, namespace_id, workflow_id, run_id)
);

CREATE TABLE IF NOT EXISTS current_executions (
    shard_id            INTEGER NOT NULL,
    namespace_id        TEXT    NOT NULL,
    workflow_id         TEXT    NOT NULL,
    run_id              TEXT    NOT NULL,
    create_request_id   TEXT    NOT NULL,
    state               INTEGER NOT NULL,
    status              INTEGER NOT NULL,
    last_write_version  INTEGER NOT NULL,
    start_version       INTEGER NOT NULL,
    PRIMARY KEY (shard_id, namespace_id, workflow_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS history_tree (
    tree_id    TEXT NOT NULL,
    branch_id  TEXT NOT NULL,
    ancestors  TEXT NOT NULL,          -- JSON list of [branch_id, end_node_id]
    PRIMARY KEY (tree_id, branch_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS history_node (
    tree_id      TEXT    NOT NULL,
    branch_id    TEXT    NOT NULL,
    node_id      INTEGER NOT NULL,
    txn_id       INTEGER NOT NULL,
    event_count  INTEGER NOT NULL,
    data         BLOB    NOT NULL,
    PRIMARY KEY (tree_id, branch_id, node_id, txn_id)
);

CREATE TABLE IF NOT EXISTS transfer_tasks (
    shard_id  INTEGER NOT NULL,
    task_id   INTEGER NOT NULL,
    data      BLOB    NOT NULL,
    PRIMARY KEY (shard_id, task_id)
);

CREATE TABLE IF NOT EXISTS timer_tasks (
    shard_id         INTEGER NOT NULL,
    visibility_time  INTEGER NOT NULL,
    task_id          INTEGER NOT NULL,
    data             BLOB    NOT NULL,
    PRIMARY KEY (shard_id, visibility_time, task_id)
);

CREATE TABLE IF NOT EXISTS visibility_tasks (
    shard_id  INTEGER NOT NULL,
    task_id   INTEGER NOT NULL,
    data      BLOB    NOT NULL,
    PRIMARY KEY (shard_id, task_id)
);

CREATE TABLE IF NOT EXISTS replication_tasks (
    shard_id  INTEGER NOT NULL,
    task_id   INTEGER NOT NULL,
    data      BLOB    NOT NULL,
    PRIMARY KEY (shard_id, task_id)
);

CREATE TABLE IF NOT EXISTS task_queues (
    namespace_id  TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    task_type     INTEGER NOT NULL,
    range_id      INTEGER NOT NULL,
    ack_level     INTEGER NOT NULL,
    kind          INTEGER NOT NULL,
    updated_time  INTEGER NOT NULL,
    PRIMARY KEY (namespace_id, name, task_type)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS tasks (
    namespace_id  TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    task_type     INTEGER NOT NULL,
    task_id       INTEGER NOT NULL,
    expiry_time   INTEGER NOT NULL,
    data          BLOB    NOT NULL,
    PRIMARY KEY (namespace_id, name, task_type, task_id)
);

CREATE TABLE IF NOT EXISTS namespaces (
    id                    TEXT    NOT NULL PRIMARY KEY,
    name                  TEXT    NOT NULL UNIQUE,
    data                  BLOB    NOT NULL,
    is_global             INTEGER NOT NULL,
    notification_version  INTEGER NOT NULL
);
