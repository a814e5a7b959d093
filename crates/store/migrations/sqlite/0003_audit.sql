-- The audit trail: one row per AuditEvent (its JSON in `resource`, opaque to the store), with the
-- columns it is searched by. Append-only: rows are written and, past the retention period, deleted;
-- never changed. The same table on PostgreSQL (migrations/postgres).
CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_ms BIGINT  NOT NULL,
    type_code   TEXT    NOT NULL,
    subtype     TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    client_id   TEXT    NULL,
    user_ref    TEXT    NULL,
    patient     TEXT    NULL,
    entity      TEXT    NULL,
    ip          TEXT    NULL,
    resource    TEXT    NOT NULL
);
CREATE INDEX audit_events_recorded ON audit_events (recorded_ms, id);
CREATE INDEX audit_events_patient ON audit_events (patient, recorded_ms);
CREATE INDEX audit_events_entity ON audit_events (entity, recorded_ms);
CREATE INDEX audit_events_client ON audit_events (client_id, recorded_ms);
CREATE INDEX audit_events_user ON audit_events (user_ref, recorded_ms);

-- Any UPDATE is refused, whoever runs it.
CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
