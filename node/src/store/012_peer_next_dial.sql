-- When `serve` will next try to reach a peer it could not reach (RFC 3339),
-- for `status`; NULL while connected or never tried.
ALTER TABLE peers ADD COLUMN next_dial TEXT;
