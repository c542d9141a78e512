// AI tasks through the edge: a READY document's summary submitted over REST (the task and its
// job at once), followed to completion, read back with its typed result; a quiz generated over
// REST with its answers hidden until submitted; bad input is 400 naming the field.

import { test } from "node:test";
import assert from "node:assert/strict";
import { eventually, http, signIn } from "../testlib/edge.mjs";

await signIn();

const TEXT =
  "# Bees\n\n" +
  "Honey bees live in colonies ruled by a single queen. " +
  "Worker bees collect nectar from flowers and turn it into honey. " +
  "A colony can hold fifty thousand bees in summer. " +
  "Bees dance to tell each other where the flowers are. " +
  "Beekeepers harvest the honey in late summer.\n";

let document;

test("a document for the tasks becomes READY", async () => {
  const response = await http("POST", "/api/v1/documents?filename=bees.md", {
    body: TEXT,
    headers: { "content-type": "text/markdown" },
  });
  assert.equal(response.status, 200, response.text);
  document = await eventually(
    async () => {
      const got = await http("GET", `/api/v1/documents/${response.json.document.id}`);
      return got.json?.document?.status === "DOCUMENT_STATUS_READY" && got.json.document;
    },
    { timeoutMs: 60_000 },
  );
  assert.ok(document, "the document became READY");
  assert.ok(document.notes?.sections?.length >= 1, JSON.stringify(document.notes));
});

test("a summary task over REST returns the task and its job, then its result", async () => {
  const response = await http("POST", "/api/v1/tasks", {
    body: { source: { document_id: document.id }, type: "TASK_TYPE_SUMMARIZE" },
  });
  assert.equal(response.status, 200, response.text);
  const task = response.json.task;
  assert.equal(task.status, "TASK_STATUS_QUEUED");
  assert.equal(task.job_id, response.json.job.id);
  const done = await eventually(
    async () => {
      const got = await http("GET", `/api/v1/tasks/${task.id}`);
      return got.json?.task?.status === "TASK_STATUS_SUCCEEDED" && got.json.task;
    },
    { timeoutMs: 60_000 },
  );
  assert.ok(done, "the task succeeded");
  assert.equal(done.result.engine, "minilm-centroid");
  assert.equal(done.result.summary.sentences.length, 3, JSON.stringify(done.result));
  const listed = await http("GET", `/api/v1/tasks?document_id=${document.id}`);
  assert.equal(listed.status, 200, listed.text);
  assert.ok(listed.json.tasks.some((t) => t.id === task.id), listed.text);
});

test("a quiz over REST hides its answers until submitted", async () => {
  const response = await http("POST", "/api/v1/quizzes", {
    body: { document_id: document.id, num_questions: 3, quiz_type: "QUIZ_TYPE_TRUE_FALSE" },
  });
  assert.equal(response.status, 200, response.text);
  const quiz = await eventually(
    async () => {
      const got = await http("GET", `/api/v1/quizzes/${response.json.quiz.id}`);
      return got.json?.quiz?.status === "QUIZ_STATUS_READY" && got.json.quiz;
    },
    { timeoutMs: 60_000 },
  );
  assert.ok(quiz, "the quiz became READY");
  assert.ok(quiz.questions.every((q) => q.answer === ""), JSON.stringify(quiz));
  const graded = await http("POST", `/api/v1/quizzes/${quiz.id}:submit`, {
    body: { answers: { q1: "true" } },
  });
  assert.equal(graded.status, 200, graded.text);
  assert.equal(graded.json.submission.total_questions, quiz.questions.length);
  const history = await http("GET", "/api/v1/quizzes");
  assert.equal(history.status, 200, history.text);
  assert.ok(history.json.stats.submissions >= 1, history.text);
});

test("bad input over REST is 400 naming the field", async () => {
  const response = await http("POST", "/api/v1/tasks", {
    body: { source: { document_id: "not-an-id" }, type: "TASK_TYPE_SUMMARIZE" },
  });
  assert.equal(response.status, 400, response.text);
  assert.match(response.text, /source\.document_id/);
});
