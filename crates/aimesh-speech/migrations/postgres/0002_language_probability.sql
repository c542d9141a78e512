-- The probability of a transcription's detected language (NULL when the caller named it).
ALTER TABLE transcriptions ADD COLUMN language_probability DOUBLE PRECISION;
