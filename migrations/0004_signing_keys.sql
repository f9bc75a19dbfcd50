-- Keys that sign the JWTs wxsessiond issues (tokens.*), shared by every
-- process on this database. One current key (retired_at = 0); retired keys
-- stay while a token they signed may still be valid (verify_until).
CREATE TABLE signing_keys (
  kid          TEXT PRIMARY KEY,           -- RFC 7638 thumbprint
  algorithm    TEXT NOT NULL,              -- 'ES256' or 'EdDSA'
  private_key  TEXT NOT NULL,              -- PKCS#8 PEM, sealed when configured
  created_at   INTEGER NOT NULL,           -- unix seconds
  retired_at   INTEGER NOT NULL DEFAULT 0, -- 0: the current key
  verify_until INTEGER NOT NULL DEFAULT 0  -- unix seconds; retired keys only
) WITHOUT ROWID;
-- At most one current key, whatever two processes try at once.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (retired_at)
  WHERE retired_at = 0;
