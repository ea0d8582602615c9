-- A host name may be as long as DNS allows (253 bytes, as common::names checks); the
-- column held 191 characters, so such a host could not be created on MySQL/MariaDB.
-- (utf8mb4: 253 characters make a 1012-byte unique key, within InnoDB's 3072.)
ALTER TABLE hosts MODIFY hostname VARCHAR(253) NOT NULL;
