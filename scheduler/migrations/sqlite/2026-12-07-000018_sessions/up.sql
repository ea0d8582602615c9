-- Signed-in browsers. A session's secret (the cookie) is never stored: only its SHA-256
-- (hex). `csrf` is the anti-forgery token its forms carry. A session ends when it
-- expires, when it signs out (the row is deleted), or when the token it was made with
-- is revoked.
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hash CHAR(64) NOT NULL UNIQUE,
    user_id BIGINT NOT NULL REFERENCES users(id),
    token_id BIGINT NOT NULL REFERENCES api_tokens(id),
    csrf CHAR(64) NOT NULL,
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires);
