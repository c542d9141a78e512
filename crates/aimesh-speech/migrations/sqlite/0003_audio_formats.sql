-- Synthesised audio in several formats and sample rates, kept as a cache bounded per owner:
-- the stored file's sample rate (eSpeak NG's own, 22050, for audio made before), and when the
-- audio was last synthesised, served from the cache or downloaded (the least recently used is
-- evicted first).
ALTER TABLE synthesized_audio ADD COLUMN sample_rate INTEGER NOT NULL DEFAULT 22050;
ALTER TABLE synthesized_audio ADD COLUMN last_used_at TEXT;
UPDATE synthesized_audio SET last_used_at = created_at;
CREATE INDEX synthesized_audio_by_use ON synthesized_audio (owner_id, last_used_at);
