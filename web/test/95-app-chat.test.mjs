// The browser app's chat, in a real headless Chromium through the real edge. Where the mesh has
// the engines replies need (the chat model and the embeddings engine: ListModels says), a
// message's reply is seen streaming into the page before it is DONE, and is written again on
// request. Where it has not, the reply job waits for a worker that never comes (the mesh queues
// it and no process claims the kind): the page says why, from ListModels, shows the reply
// waiting, and stopping, regenerating and editing still work. Either way sessions are created by
// the first message, renamed and deleted.

import { after } from "node:test";
import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  Intent,
  MessageStatus,
  Role,
  Stage,
  WatchMessageRequestSchema,
  WatchMessageResponseSchema,
} from "../src/gen/aimesh/conversation/v1/conversation_pb.js";
import { http } from "../testlib/edge.mjs";
import { png } from "../testlib/png.mjs";
import { appTest, closeBrowser, signUp, snapshot } from "../testlib/browser.mjs";

after(closeBrowser);

/**
 * The chat and embeddings models as ListModels reports them, asked over REST with the token of
 * the user signed in on `page`.
 */
async function replyEngines(page) {
  const token = await page.evaluate(() => JSON.parse(localStorage.getItem("aimesh.session")).access);
  const response = await http("GET", "/api/v1/models", { headers: { authorization: `Bearer ${token}` } });
  assert.equal(response.status, 200, response.text);
  const wanted = response.json.models.filter((m) =>
    ["CAPABILITY_CHAT", "CAPABILITY_EMBEDDINGS"].includes(m.capability),
  );
  assert.equal(wanted.length, 2, response.text);
  const missing = wanted.filter((m) => m.state !== "MODEL_STATE_READY");
  return { ready: missing.length === 0, missing };
}

const REPLY_MS = 240_000;

/** Records, while a reply is in progress, each text the page shows for it. */
async function watchStreaming(page) {
  await page.evaluate(() => {
    window.__streamed = [];
    const observer = new MutationObserver(() => {
      const live = document.querySelector('li[data-status="processing"] [data-testid="reply-text"]');
      const text = live?.textContent ?? "";
      if (text && window.__streamed.at(-1) !== text) window.__streamed.push(text);
    });
    observer.observe(document.body, { subtree: true, childList: true, characterData: true });
  });
}

async function sendFirst(page, text) {
  await page.getByRole("link", { name: "Chat" }).click();
  await page.getByRole("heading", { name: "Chat", level: 1 }).waitFor();
  await page.getByRole("heading", { name: "New conversation", level: 2 }).waitFor();
  await page.getByLabel("Message", { exact: true }).fill(text);
  await page.getByRole("button", { name: "Send" }).click();
  await page.waitForURL(/#\/chat\/[0-9a-f-]{36}$/);
  const messages = page.getByRole("list", { name: "Messages" });
  await messages.getByRole("article", { name: "Your message" }).filter({ hasText: text }).waitFor();
  return messages;
}

appTest("a message's reply streams into the page and reaches DONE, or the page says why no reply comes", async ({ page }) => {
  await signUp(page);
  const engines = await replyEngines(page);
  await page.getByRole("link", { name: "Chat" }).click();
  await page.getByRole("heading", { name: "New conversation", level: 2 }).waitFor();
  await watchStreaming(page);
  const question = "Hello! What is the capital of France?";
  const messages = await sendFirst(page, question);
  // The first message names the session.
  await page.getByRole("list", { name: "Conversations" }).getByText(question).waitFor();

  if (engines.ready) {
    // While it is written: the stage, and the text so far.
    const writing = messages.locator('li[data-status="processing"]');
    await writing.getByRole("status", { name: "Reply stage" }).waitFor({ timeout: 30_000 }).catch(() => undefined);
    await page.waitForFunction(() => window.__streamed.length > 0, null, { timeout: 60_000 }).catch(() => undefined);
    if (await writing.count()) await snapshot(page, "chat-streaming");
    const done = messages.locator('li[data-status="done"]').filter({ has: page.getByRole("article", { name: "Reply" }) });
    await done.waitFor({ timeout: REPLY_MS });
    const final = (await done.getByTestId("reply-text").textContent()) ?? "";
    assert.ok(final.trim().length > 0, "the reply has text");
    const streamed = await page.evaluate(() => window.__streamed);
    assert.ok(streamed.length >= 2, `the reply's text grew while it was being written: ${JSON.stringify(streamed)}`);
    assert.ok(final.startsWith(streamed.at(-1).trimEnd().slice(0, 20)), `streamed ${JSON.stringify(streamed)} then ${final}`);
    for (let i = 1; i < streamed.length; i++) {
      assert.ok(streamed[i].length >= streamed[i - 1].length, `the reply grew: ${JSON.stringify(streamed)}`);
    }
    await snapshot(page, "chat-reply");

    // Written again on request: the old reply goes, a new one streams to DONE.
    await page.getByRole("button", { name: "Regenerate reply" }).click();
    await messages.locator('li[data-status="processing"]').waitFor();
    await messages.locator('li[data-status="done"]').filter({ has: page.getByRole("article", { name: "Reply" }) }).waitFor({ timeout: REPLY_MS });
    assert.equal(await messages.getByRole("article", { name: "Reply" }).count(), 1);
  } else {
    // No worker can write replies here: the page says so in the server's words, the reply
    // waits, and it can be stopped.
    const notice = page.getByRole("status", { name: "Chat availability" });
    await notice.waitFor();
    for (const model of engines.missing) {
      const detail = model.detail.trim().replace(/\.$/, "");
      assert.ok((await notice.textContent()).includes(detail), `${await notice.textContent()} names ${detail}`);
    }
    assert.match(await notice.textContent(), /Replies cannot be written on this server/);
    const waiting = messages.locator('li[data-status="processing"]');
    await waiting.getByRole("status", { name: "Reply stage" }).filter({ hasText: "Waiting for a worker" }).waitFor();
    await snapshot(page, "chat-waiting");
    await waiting.getByRole("button", { name: "Stop" }).click();
    const stopped = messages.locator('li[data-status="cancelled"]');
    await stopped.getByText("Stopped before it was finished.").waitFor();

    // Regenerate: a new reply replaces the stopped one (and waits too); stop it again.
    await page.getByRole("button", { name: "Regenerate reply" }).click();
    await stopped.waitFor({ state: "detached" });
    await waiting.getByRole("button", { name: "Stop" }).click();
    await stopped.waitFor();
  }

  // Edit the message: the replies after it are written again from the edit.
  const edited = "What is the capital of Italy?";
  await messages.getByRole("button", { name: "Edit" }).click();
  await page.getByLabel("Edit your message (the replies after it are written again)").fill(edited);
  await page.getByRole("button", { name: "Save and send" }).click();
  await messages.getByRole("article", { name: "Your message" }).filter({ hasText: edited }).waitFor();
  assert.equal(await messages.getByRole("article", { name: "Reply" }).count(), 1);
  if (engines.ready) {
    await messages.locator('li[data-status="done"]').filter({ has: page.getByRole("article", { name: "Reply" }) }).waitFor({ timeout: REPLY_MS });
  } else {
    await messages.locator('li[data-status="processing"]').getByRole("button", { name: "Stop" }).click();
    await messages.locator('li[data-status="cancelled"]').waitFor();
  }

  // Rename, then delete the session.
  await page.getByRole("button", { name: "Rename" }).click();
  await page.getByLabel("Title", { exact: true }).fill("Capitals");
  await page.getByRole("button", { name: "Save title" }).click();
  await page.getByRole("heading", { name: "Capitals", level: 2 }).waitFor();
  const sessions = page.getByRole("list", { name: "Conversations" });
  await sessions.getByRole("link", { name: /Capitals/ }).waitFor();
  await snapshot(page, "chat-renamed");
  page.once("dialog", (dialog) => void dialog.accept());
  await page.getByRole("button", { name: "Delete" }).click();
  await page.waitForURL(/#\/chat$/);
  await sessions.getByText("No conversations yet.").waitFor();
});

appTest("sessions are listed newest first and a new chat starts empty", async ({ page }) => {
  await signUp(page);
  await page.getByRole("link", { name: "Chat" }).click();
  await page.getByRole("button", { name: "New chat" }).click();
  await page.waitForURL(/#\/chat\/[0-9a-f-]{36}$/);
  await page.getByText("No messages yet: write the first below.").waitFor();
  await page.getByRole("heading", { name: "New conversation", level: 2 }).waitFor();
  await page.getByRole("button", { name: "Rename" }).click();
  await page.getByLabel("Title", { exact: true }).fill("Older");
  await page.getByRole("button", { name: "Save title" }).click();
  await page.getByRole("heading", { name: "Older", level: 2 }).waitFor();
  const older = page.url();
  await page.getByRole("button", { name: "New chat" }).click();
  await page.waitForURL((url) => url.href !== older && /#\/chat\/[0-9a-f-]{36}$/.test(url.href));
  await page.getByRole("heading", { name: "New conversation", level: 2 }).waitFor();
  await page.getByRole("button", { name: "Rename" }).click();
  await page.getByLabel("Title", { exact: true }).fill("Newer");
  await page.getByRole("button", { name: "Save title" }).click();
  await page.getByRole("heading", { name: "Newer", level: 2 }).waitFor();
  const sessions = page.getByRole("list", { name: "Conversations" }).getByRole("link");
  await sessions.filter({ hasText: "Newer" }).waitFor();
  await sessions.filter({ hasText: "Older" }).waitFor();
  const names = await sessions.allTextContents();
  assert.match(names[0], /^Newer/, JSON.stringify(names));
  assert.match(names[1], /^Older/, JSON.stringify(names));
  // Phone width: nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
  await snapshot(page, "chat-phone");
});

appTest("a gallery image's page starts a chat about it, and the message shows the image", async ({ page }) => {
  await signUp(page);
  const token = await page.evaluate(() => JSON.parse(localStorage.getItem("aimesh.session")).access);
  const uploaded = await http("POST", "/api/v1/gallery/images?title=Garden%20wall", {
    body: new Uint8Array(png(48, 32)),
    headers: { "content-type": "image/png", authorization: `Bearer ${token}` },
  });
  assert.equal(uploaded.status, 200, uploaded.text);
  const imageId = uploaded.json.image.id;
  const open = (hash) => page.evaluate((to) => (window.location.hash = to), hash);
  await open(`#/gallery/${imageId}`);
  await page.getByRole("link", { name: "Ask about it in chat" }).click();
  await page.waitForURL(new RegExp(`#/chat/about/${imageId}$`));
  const about = page.getByRole("figure", { name: "The image this message is about" });
  await about.getByRole("img", { name: "The image this message is about" }).waitFor();
  const text = "Make it black and white";
  await page.getByLabel("Message", { exact: true }).fill(text);
  await page.getByRole("button", { name: "Send" }).click();
  await page.waitForURL(/#\/chat\/[0-9a-f-]{36}$/);
  const mine = page
    .getByRole("list", { name: "Messages" })
    .getByRole("article", { name: "Your message" })
    .filter({ hasText: text });
  await mine.getByRole("img", { name: "The image this message is about" }).waitFor();
  // The message as stored names the image.
  const session = page.url().split("/").at(-1);
  const listed = await http("GET", `/api/v1/chat/sessions/${session}/messages`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(listed.status, 200, listed.text);
  const user = listed.json.messages.find((m) => m.role === "ROLE_USER");
  assert.equal(user.image_id, imageId, listed.text);
  await snapshot(page, "chat-about-image");
  // Dropping the image from a new conversation leaves a plain one.
  await open(`#/chat/about/${imageId}`);
  await about.waitFor();
  await page.getByRole("button", { name: "Remove image" }).click();
  await page.waitForURL(/#\/chat$/);
  await about.waitFor({ state: "detached" });
});

/** grpc-web frames: each message, then the trailers saying OK. */
function grpcWebBody(messages) {
  const frame = (flag, bytes) => {
    const head = Buffer.alloc(5);
    head[0] = flag;
    head.writeUInt32BE(bytes.length, 1);
    return Buffer.concat([head, Buffer.from(bytes)]);
  };
  return Buffer.concat([
    ...messages.map((m) => frame(0x00, toBinary(WatchMessageResponseSchema, m))),
    frame(0x80, Buffer.from("grpc-status: 0\r\ngrpc-message: \r\n")),
  ]);
}

appTest("a failed reply says at which stage and why, as a sentence", async ({ page }) => {
  await signUp(page);
  // The reply's stream, as the server sends it when the act stage fails (whatever engines
  // this mesh has): a stage change, then the finished message, FAILED.
  const reason = "no chat model is loaded here: the model is not installed";
  await page.route("**/aimesh.conversation.v1.ConversationService/WatchMessage", (route) => {
    const body = route.request().postDataBuffer();
    const request = fromBinary(WatchMessageRequestSchema, body.subarray(5, 5 + body.readUInt32BE(1)));
    const failed = create(WatchMessageResponseSchema, {
      event: {
        case: "message",
        value: {
          id: request.id,
          sessionId: request.sessionId,
          role: Role.ASSISTANT,
          status: MessageStatus.FAILED,
          stage: Stage.ACT,
          failureReason: reason,
          content: `Sorry, I could not do that (act stage failed): ${reason}`,
        },
      },
    });
    const stage = create(WatchMessageResponseSchema, {
      event: { case: "stage", value: { stage: Stage.ACT, detail: "chat (0.91)", percent: 25 } },
    });
    return route.fulfill({
      status: 200,
      headers: { "content-type": "application/grpc-web+proto" },
      body: grpcWebBody([stage, failed]),
    });
  });
  const messages = await sendFirst(page, "Tell me a joke about owls.");
  const failed = messages.locator('li[data-status="failed"]');
  const alert = failed.getByRole("alert");
  await alert.waitFor();
  assert.equal(
    await alert.textContent(),
    `The reply failed at the act stage (writing the reply): ${reason}.`,
  );
  // The apology that repeats the reason is not shown twice.
  assert.equal(await failed.getByTestId("reply-text").count(), 0);
  await snapshot(page, "chat-failed");
  await page.unroute("**/aimesh.conversation.v1.ConversationService/WatchMessage");
  // Stop the real reply, which goes on (or waits) on the server.
  await page.reload();
  const reply = messages.locator("li.assistant");
  await reply.waitFor();
  if ((await reply.getAttribute("data-status")) === "processing") {
    await reply.getByRole("button", { name: "Stop" }).click({ timeout: 5_000 }).catch(() => undefined);
    await messages.locator('li.assistant:not([data-status="processing"])').waitFor();
  }
});

appTest("a reply's cited passages show under it, and its gallery image loads inline", async ({ page }) => {
  await signUp(page);
  // An image of this user's gallery, as the pipeline would have made for the reply.
  const token = await page.evaluate(() => JSON.parse(localStorage.getItem("aimesh.session")).access);
  const uploaded = await http("POST", "/api/v1/gallery/images?title=Made%20for%20the%20reply", {
    body: new Uint8Array(png(32, 32)),
    headers: { "content-type": "image/png", authorization: `Bearer ${token}` },
  });
  assert.equal(uploaded.status, 200, uploaded.text);
  const imageId = uploaded.json.image.id;
  // The reply's stream as the server sends it for a documents answer that also made an image
  // (this mesh may have no document or image engines): text pieces, then the finished message.
  await page.route("**/aimesh.conversation.v1.ConversationService/WatchMessage", (route) => {
    const body = route.request().postDataBuffer();
    const request = fromBinary(WatchMessageRequestSchema, body.subarray(5, 5 + body.readUInt32BE(1)));
    const content = "Owls hunt at night [1]. Their feathers are soft [2].";
    const events = [
      { case: "stage", value: { stage: Stage.ACT, detail: "documents (0.88)", percent: 25 } },
      { case: "delta", value: content.slice(0, 20) },
      { case: "delta", value: content.slice(20) },
      {
        case: "message",
        value: {
          id: request.id,
          sessionId: request.sessionId,
          role: Role.ASSISTANT,
          status: MessageStatus.DONE,
          stage: Stage.FINALISE,
          intent: Intent.DOCUMENTS,
          content,
          imageId,
          refinedPrompt: "owls at night",
          citations: [
            { index: 1, documentId: "", filename: "owls.pdf", page: 3, text: "Owls are nocturnal hunters.", score: 0.71 },
            { index: 2, documentId: "", filename: "birds.txt", page: 0, text: "Owl feathers muffle sound.", score: 0.52 },
          ],
        },
      },
    ].map((event) => create(WatchMessageResponseSchema, { event }));
    return route.fulfill({
      status: 200,
      headers: { "content-type": "application/grpc-web+proto" },
      body: grpcWebBody(events),
    });
  });
  const messages = await sendFirst(page, "What do my documents say about owls?");
  const reply = messages.locator('li[data-status="done"]');
  await reply.getByText("Owls hunt at night [1]. Their feathers are soft [2].").waitFor();
  const sources = reply.getByRole("list", { name: "Sources" });
  await sources.getByText("[1] owls.pdf, page 3").waitFor();
  await sources.getByText("[2] birds.txt").waitFor();
  await sources.getByText("[1] owls.pdf, page 3").click();
  await sources.getByText("Owls are nocturnal hunters.").waitFor();
  const image = reply.getByRole("img", { name: "Image for: owls at night" });
  await image.waitFor();
  const handle = await image.elementHandle();
  await page.waitForFunction((img) => img.complete && img.naturalWidth > 0, handle, { timeout: 30_000 });
  assert.match(await image.getAttribute("src"), /^\/api\/v1\/files\//);
  await snapshot(page, "chat-sources-image");
  await page.unroute("**/aimesh.conversation.v1.ConversationService/WatchMessage");
  await page.reload();
  const real = messages.locator("li.assistant");
  await real.waitFor();
  if ((await real.getAttribute("data-status")) === "processing") {
    await real.getByRole("button", { name: "Stop" }).click({ timeout: 5_000 }).catch(() => undefined);
    await messages.locator('li.assistant:not([data-status="processing"])').waitFor();
  }
});
