-- The audit trail kept as chunks: the events one writer batch appended, together in one row (a JSON
-- array, opaque to the database), with each value a search looks for (patient, entity, client,
-- user, outcome, type, subtype, action) listed once per chunk in `audit_terms`. One event costs the
-- database a few bytes of a row instead of a row and five index entries of its own: the trail keeps
-- up with a busy gateway. A search finds the chunks by their terms and time span, and the store
-- picks the matching events out of them. An event's number is its chunk's number × 65 536 plus its
-- place in the chunk. Append-only, like the table it replaces; the retention sweep deletes whole
-- chunks once every event in them is older than the retention period.
CREATE TABLE audit_chunks (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    first_ms BIGINT  NOT NULL,
    last_ms  BIGINT  NOT NULL,
    events   INTEGER NOT NULL,
    body     TEXT    NOT NULL
);
CREATE INDEX audit_chunks_first ON audit_chunks (first_ms, id);
CREATE INDEX audit_chunks_last ON audit_chunks (last_ms, id);

CREATE TABLE audit_terms (
    term  TEXT   NOT NULL,
    chunk BIGINT NOT NULL,
    PRIMARY KEY (term, chunk)
) WITHOUT ROWID;
CREATE INDEX audit_terms_chunk ON audit_terms (chunk);

-- The events of 0003's table, each a chunk of its own (numbered as the row was × 65 536).
INSERT INTO audit_chunks (id, first_ms, last_ms, events, body)
    SELECT id, recorded_ms, recorded_ms, 1,
           json_array(json_array(recorded_ms, type_code, subtype, action, outcome, client_id, user_ref,
                                 patient, entity, ip, resource))
    FROM audit_events;
INSERT OR IGNORE INTO audit_terms (term, chunk)
    SELECT 'p:' || patient, id FROM audit_events WHERE patient IS NOT NULL
    UNION ALL SELECT 'e:' || entity, id FROM audit_events WHERE entity IS NOT NULL
    UNION ALL SELECT 'c:' || client_id, id FROM audit_events WHERE client_id IS NOT NULL
    UNION ALL SELECT 'u:' || user_ref, id FROM audit_events WHERE user_ref IS NOT NULL
    UNION ALL SELECT 'o:' || outcome, id FROM audit_events
    UNION ALL SELECT 't:' || type_code, id FROM audit_events
    UNION ALL SELECT 's:' || subtype, id FROM audit_events
    UNION ALL SELECT 'a:' || action, id FROM audit_events;
DROP TABLE audit_events;

-- Any UPDATE is refused, whoever runs it.
CREATE TRIGGER audit_chunks_append_only BEFORE UPDATE ON audit_chunks
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
CREATE TRIGGER audit_terms_append_only BEFORE UPDATE ON audit_terms
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
