-- The QR code and link of a pairing code carry a one-time token of 256 bits instead of the
-- short typed code (issue 17): a token cannot be guessed, so only typed codes need the
-- guessing limits. Stored hashed like the code; the row is consumed by either, once.
alter table pairing_codes add column token_hash bytea;
create unique index pairing_codes_token_hash_key on pairing_codes (token_hash);
