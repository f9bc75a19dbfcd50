-- Users: one row per (appid, openid), holding the newest session_key WeChat
-- gave the user. Every session of the user decrypts with it.
CREATE TABLE users (
  appid       TEXT NOT NULL,
  openid      TEXT NOT NULL,
  unionid     TEXT,
  session_key TEXT NOT NULL,
  created_at  INTEGER NOT NULL,  -- unix seconds
  updated_at  INTEGER NOT NULL,  -- unix seconds, last new session_key
  PRIMARY KEY (appid, openid)
) WITHOUT ROWID;

-- Sessions: keyed by SHA-256 of the session id (32 raw bytes); the raw id is
-- never stored. expires_at is the effective expiry: the sooner of the
-- absolute ttl and the idle window.
CREATE TABLE sessions (
  id_hash      BLOB PRIMARY KEY,
  appid        TEXT NOT NULL,
  openid       TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL
) WITHOUT ROWID;

-- The sweeper deletes by expiry; revoke-by-user deletes by user.
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_user ON sessions (appid, openid);
