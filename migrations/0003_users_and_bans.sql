-- Issue 15: users kept no longer than needed, sessions in login order, and
-- bans.
--
-- last_login_at: unix seconds of the user's last login (the record's
-- creation for a user a ban created). login_count: logins so far; 0 means
-- the user never logged in. Existing users logged in at least once, at
-- updated_at (the time of their newest session_key).
ALTER TABLE users ADD COLUMN last_login_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN login_count INTEGER NOT NULL DEFAULT 0;
UPDATE users SET last_login_at = updated_at, login_count = 1;
-- The retention sweep walks users by their last login.
CREATE INDEX users_last_login ON users (last_login_at);

-- login_seq: the user's login_count at this login; orders sessions made in
-- the same second (the per-user cap ends the oldest).
ALTER TABLE sessions ADD COLUMN login_seq INTEGER NOT NULL DEFAULT 0;

-- One ban per user at most. until: unix seconds, NULL = for ever; a ban
-- with until <= now is not in force and is deleted by the sweeper.
CREATE TABLE bans (
  appid  TEXT NOT NULL,
  openid TEXT NOT NULL,
  reason TEXT NOT NULL,
  since  INTEGER NOT NULL,
  until  INTEGER,
  PRIMARY KEY (appid, openid)
) WITHOUT ROWID;
