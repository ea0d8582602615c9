-- Users of the API, and their API tokens. A token's secret is never stored: only its
-- SHA-256 (hex), which a request's bearer token is looked up by.
CREATE TABLE users (
    id BIGINT PRIMARY KEY AUTO_INCREMENT,
    name VARCHAR(64) NOT NULL UNIQUE,
    admin BOOLEAN NOT NULL DEFAULT 0,
    created BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE api_tokens (
    id BIGINT PRIMARY KEY AUTO_INCREMENT,
    user_id BIGINT NOT NULL,
    hash CHAR(64) NOT NULL UNIQUE,
    created BIGINT NOT NULL,
    revoked BIGINT,
    INDEX api_tokens_user (user_id),
    FOREIGN KEY (user_id) REFERENCES users(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
