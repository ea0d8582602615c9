-- Signed-in browsers. A session's secret (the cookie) is never stored: only its SHA-256
-- (hex). `csrf` is the anti-forgery token its forms carry. A session ends when it
-- expires, when it signs out (the row is deleted), or when the token it was made with
-- is revoked.
CREATE TABLE sessions (
    id BIGINT PRIMARY KEY AUTO_INCREMENT,
    hash CHAR(64) NOT NULL UNIQUE,
    user_id BIGINT NOT NULL,
    token_id BIGINT NOT NULL,
    csrf CHAR(64) NOT NULL,
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    INDEX sessions_expires (expires),
    FOREIGN KEY (user_id) REFERENCES users(id),
    FOREIGN KEY (token_id) REFERENCES api_tokens(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
