-- Quizzes on documents and their graded submissions (PostgreSQL).
CREATE TABLE quizzes (
    id             UUID        NOT NULL PRIMARY KEY, -- UUIDv7
    owner_id       TEXT        NOT NULL,
    document_id    UUID        NOT NULL,
    num_questions  INTEGER     NOT NULL,
    difficulty     TEXT        NOT NULL,
    quiz_type      TEXT        NOT NULL,
    status         TEXT        NOT NULL,
    failure_reason TEXT,
    job_id         UUID,
    engine         TEXT,
    questions      TEXT, -- JSON: the questions with answers and cited sentences, once READY
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

CREATE INDEX quizzes_by_owner ON quizzes (owner_id, id DESC);

CREATE TABLE quiz_submissions (
    id              UUID             NOT NULL PRIMARY KEY, -- UUIDv7: the keyset of the history
    quiz_id         UUID             NOT NULL REFERENCES quizzes (id) ON DELETE CASCADE,
    owner_id        TEXT             NOT NULL,
    document_id     UUID             NOT NULL,
    correct_count   INTEGER          NOT NULL,
    total_questions INTEGER          NOT NULL,
    score           DOUBLE PRECISION NOT NULL, -- percent
    results         TEXT             NOT NULL, -- JSON: per question
    submitted_at    TIMESTAMPTZ      NOT NULL
);

CREATE INDEX quiz_submissions_by_owner ON quiz_submissions (owner_id, id DESC);
CREATE INDEX quiz_submissions_by_quiz ON quiz_submissions (quiz_id);
