-- Vendor rate budgets counted by every replica together: calls taken per budget and window.
CREATE TABLE budgets (
    name         TEXT    NOT NULL,
    window_index BIGINT  NOT NULL,
    used         BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (name, window_index)
);
