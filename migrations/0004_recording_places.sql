-- Where each archived recording is kept ('local': the archive directory; else the bucket's URL),
-- and the provider's own copy: its ids (to delete it once archived) and when it was deleted.

ALTER TABLE recordings ADD COLUMN store TEXT;
ALTER TABLE recordings ADD COLUMN provider_account TEXT;
ALTER TABLE recordings ADD COLUMN provider_sid TEXT;
ALTER TABLE recordings ADD COLUMN provider_deleted_at BIGINT;
