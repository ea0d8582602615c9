-- A host name may be as long as DNS allows (253 bytes); SQLite's TEXT already holds
-- it, so only the MySQL/MariaDB column changes. Nothing to do here.
SELECT 1;
