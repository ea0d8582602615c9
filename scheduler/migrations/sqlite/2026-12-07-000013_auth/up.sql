-- Users of the API, and their API tokens. A token's secret is never stored: only its
-- SHA-256 (hex), which a request's bearer token is looked up by.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name VARCHAR(64) NOT NULL UNIQUE,
    admin BOOLEAN NOT NULL DEFAULT 0,
    created BIGINT NOT NULL
);
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id),
    hash CHAR(64) NOT NULL UNIQUE,
    created BIGINT NOT NULL,
    revoked BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);
