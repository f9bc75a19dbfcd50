-- The access-token centre: one WeChat access_token per app, shared by every
-- process on the host, with a lease so only one of them refreshes at a time.
CREATE TABLE access_tokens (
  appid         TEXT PRIMARY KEY,
  token         TEXT NOT NULL DEFAULT '',  -- '' until the first fetch
  expires_at    INTEGER NOT NULL DEFAULT 0,  -- unix seconds
  lock_owner    TEXT,                        -- who holds the refresh lease
  lock_until_ms INTEGER NOT NULL DEFAULT 0   -- unix milliseconds
) WITHOUT ROWID;
