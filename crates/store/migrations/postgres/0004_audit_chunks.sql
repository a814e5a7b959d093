-- The audit trail kept as chunks: the events one writer batch appended, together in one row (a JSON
-- array, opaque to the database), with each value a search looks for (patient, entity, client,
-- user, outcome, type, subtype, action) listed once per chunk in `audit_terms`. One event costs the
-- database a few bytes of a row instead of a row and five index entries of its own: the trail keeps
-- up with a busy gateway. A search finds the chunks by their terms and time span, and the store
-- picks the matching events out of them. An event's number is its chunk's number × 65 536 plus its
-- place in the chunk. Append-only, like the table it replaces; the retention sweep deletes whole
-- chunks once every event in them is older than the retention period. The same on SQLite.
CREATE TABLE audit_chunks (
    id       BIGSERIAL PRIMARY KEY,
    first_ms BIGINT    NOT NULL,
    last_ms  BIGINT    NOT NULL,
    events   INTEGER   NOT NULL,
    body     TEXT      NOT NULL
);
CREATE INDEX audit_chunks_first ON audit_chunks (first_ms, id);
CREATE INDEX audit_chunks_last ON audit_chunks (last_ms, id);

CREATE TABLE audit_terms (
    term  TEXT   NOT NULL,
    chunk BIGINT NOT NULL,
    PRIMARY KEY (term, chunk)
);
CREATE INDEX audit_terms_chunk ON audit_terms (chunk);

-- The events of 0003's table, each a chunk of its own (numbered as the row was × 65 536).
INSERT INTO audit_chunks (id, first_ms, last_ms, events, body)
    SELECT id, recorded_ms, recorded_ms, 1,
           json_build_array(json_build_array(recorded_ms, type_code, subtype, action, outcome, client_id,
                                             user_ref, patient, entity, ip, resource))::text
    FROM audit_events;
SELECT setval(pg_get_serial_sequence('audit_chunks', 'id'), COALESCE((SELECT MAX(id) FROM audit_chunks), 0) + 1, false);
INSERT INTO audit_terms (term, chunk)
    SELECT 'p:' || patient, id FROM audit_events WHERE patient IS NOT NULL
    UNION SELECT 'e:' || entity, id FROM audit_events WHERE entity IS NOT NULL
    UNION SELECT 'c:' || client_id, id FROM audit_events WHERE client_id IS NOT NULL
    UNION SELECT 'u:' || user_ref, id FROM audit_events WHERE user_ref IS NOT NULL
    UNION SELECT 'o:' || outcome, id FROM audit_events
    UNION SELECT 't:' || type_code, id FROM audit_events
    UNION SELECT 's:' || subtype, id FROM audit_events
    UNION SELECT 'a:' || action, id FROM audit_events;
DROP TABLE audit_events;

-- Any UPDATE is refused, whoever runs it (the function is 0003's).
CREATE TRIGGER audit_chunks_append_only BEFORE UPDATE ON audit_chunks
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_terms_append_only BEFORE UPDATE ON audit_terms
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
