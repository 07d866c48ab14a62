import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { backoffDelay, isRetryable } from "../src/backoff.js";
import { MemoryStorage } from "../src/index.js";
import { Queue } from "../src/queue.js";
import { CHANNEL, CONTACT, FakeHub, type Made, json, make, until } from "./support.js";

const made: Made[] = [];
function tracked(...args: Parameters<typeof make>): Made {
  const one = make(...args);
  made.push(one);
  return one;
}
afterEach(() => {
  for (const one of made.splice(0)) one.tracker.stop();
});

const QUEUE_PREFIX = `contacthub:${CHANNEL}:queue:`;
function persisted(storage: MemoryStorage): any[] {
  const items: any[] = [];
  for (let index = 0; index < storage.length; index += 1) {
    const key = storage.key(index)!;
    if (key.startsWith(QUEUE_PREFIX)) items.push(...JSON.parse(storage.getItem(key)!).items);
  }
  return items;
}

test("an admin token is refused; a tracking key is sent as a bearer token", async () => {
  assert.throws(() => make({ apiKey: "cht_abcdef" }), /admin token/);
  assert.throws(() => make({ apiKey: "  cht_abcdef" }), /admin token/);
  assert.throws(() => make({ channel: "not-a-guid" }), /GUID/);
  const { hub, tracker } = tracked({ apiKey: "chk_public" });
  await tracker.ready;
  assert.equal(hub.sent[0]!.headers.Authorization, "Bearer chk_public");
  const { hub: proxied, tracker: viaProxy } = tracked();
  await viaProxy.ready;
  assert.equal(proxied.sent[0]!.headers.Authorization, undefined);
});

test("nothing is sent before agreement, and what was recorded then is not kept", async () => {
  const { hub, storage, tracker } = tracked({}, { fresh: true });
  await tracker.ready;
  assert.equal(tracker.consent, "denied");
  tracker.click("Before");
  assert.deepEqual(await tracker.flush(), { sent: 0, rejected: 0, pending: 0, retrying: false });
  assert.equal(hub.sent.length, 0, "no contact, so not even a consent check");
  assert.deepEqual(persisted(storage), []);

  await tracker.agree();
  tracker.click("After");
  await tracker.flush();
  const calls = hub.sent.map((request) => `${request.method} ${new URL(request.url).pathname}`);
  assert.deepEqual(calls, [
    "POST /Kentico.Tracking/contacts",
    `POST /Kentico.Tracking/contacts/${CONTACT}/consents/TrackingConsent`,
    "POST /Kentico.Tracking/activities",
  ]);
  assert.deepEqual(hub.sent[1]!.body, { agree: true });
  assert.deepEqual(
    hub.activities.map((activity) => activity.value),
    ["After"],
  );
  assert.equal(tracker.contact, CONTACT);
});

test("activities recorded while the consent is being read are sent once it is agreed", async () => {
  const { hub, tracker } = tracked();
  tracker.custom("custom_loan", "5000");
  assert.equal(tracker.consent, "unknown");
  await tracker.ready;
  await tracker.flush();
  assert.deepEqual(hub.activities.map((a) => [a.type, a.value]), [["custom_loan", "5000"]]);
});

test("a contact that did not agree has its early activities dropped", async () => {
  const hub = new FakeHub();
  hub.agreed = false;
  const { tracker, storage } = tracked({}, { hub });
  tracker.click("Early");
  await tracker.ready;
  assert.equal(tracker.consent, "denied");
  await tracker.flush();
  assert.equal(hub.activities.length, 0);
  assert.deepEqual(persisted(storage), []);
});

test("every activity gets its own messageId, kept across retries", async () => {
  const { hub, tracker } = tracked();
  await tracker.ready;
  let failures = 1;
  hub.handle = (request) => {
    if (request.url.endsWith("/activities") && failures-- > 0) throw new TypeError("offline");
    return hub.answer(request);
  };
  tracker.click("A");
  tracker.click("B");
  const first = await tracker.flush();
  assert.equal(first.retrying, true);
  await until(() => hub.sent.filter((r) => r.url.endsWith("/activities")).length === 2);
  const [failed, retried] = hub.sent.filter((r) => r.url.endsWith("/activities"));
  const ids = failed!.body.activities.map((a: any) => a.messageId);
  assert.equal(new Set(ids).size, 2);
  for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.deepEqual(retried!.body.activities, failed!.body.activities);
  await until(() => tracker.queued === 0);
});

test("a 207 is read per item: 202 done, 400 dropped and reported, others retried", async () => {
  const { hub, tracker, errors } = tracked();
  await tracker.ready;
  let round = 0;
  hub.handle = (request) => {
    if (!request.url.endsWith("/activities")) return hub.answer(request);
    round += 1;
    if (round === 1) {
      return json(207, {
        results: [
          { status: 202 },
          { status: 400, error: "value is required", code: "missing_value" },
          { status: 503 },
        ],
      });
    }
    return hub.answer(request);
  };
  tracker.click("ok");
  tracker.custom("bad");
  tracker.click("later");
  const result = await tracker.flush();
  assert.deepEqual(result, { sent: 1, rejected: 1, pending: 1, retrying: true });
  assert.equal(errors.length, 1);
  const [error] = errors;
  assert.equal(error!.kind, "rejected");
  assert.equal(error!.kind === "rejected" && error.code, "missing_value");
  await until(() => round === 2 && tracker.queued === 0);
  const second = hub.sent.filter((r) => r.url.endsWith("/activities"))[1]!;
  assert.deepEqual(second.body.activities.map((a: any) => a.value), ["later"]);
});

test("retryable whole-request answers are retried; other 4xx are dropped and reported", async () => {
  for (const status of [500, 503, 429, 409, 408]) {
    assert.equal(isRetryable(status), true, String(status));
  }
  for (const status of [400, 401, 403, 404, 413, 415, 422]) {
    assert.equal(isRetryable(status), false, String(status));
  }
  const { hub, tracker, errors } = tracked();
  await tracker.ready;
  const answers = [json(503, { error: "busy", code: "overloaded" }), json(429, {}), null];
  hub.handle = (request) =>
    request.url.endsWith("/activities") ? (answers.shift() ?? hub.answer(request)) : hub.answer(request);
  tracker.click("x");
  assert.equal((await tracker.flush()).retrying, true);
  await until(() => answers.length === 0 && tracker.queued === 0);
  assert.deepEqual(errors, []);

  hub.handle = (request) =>
    request.url.endsWith("/activities")
      ? json(413, { error: "too big", code: "body_too_large" })
      : hub.answer(request);
  tracker.click("y");
  assert.deepEqual(await tracker.flush(), { sent: 0, rejected: 1, pending: 0, retrying: false });
  assert.equal(errors[0]!.kind, "refused");
  assert.equal(errors[0]!.kind === "refused" && errors[0].status, 413);
});

test("a hub that says the consent is required stops tracking", async () => {
  const { hub, tracker } = tracked();
  await tracker.ready;
  hub.handle = (request) =>
    request.url.endsWith("/activities")
      ? json(403, { error: "no", code: "consent_required" })
      : hub.answer(request);
  tracker.click("x");
  await tracker.flush();
  assert.equal(tracker.consent, "denied");
});

test("backoff doubles up to its cap, with jitter in the upper half", () => {
  const options = { base: 100, max: 1000 };
  assert.equal(backoffDelay(0, options, () => 0), 50);
  assert.equal(backoffDelay(0, options, () => 1), 100);
  assert.equal(backoffDelay(3, options, () => 0), 400);
  assert.equal(backoffDelay(3, options, () => 1), 800);
  assert.equal(backoffDelay(20, options, () => 1), 1000);
  const seen = new Set(Array.from({ length: 20 }, () => backoffDelay(2, options)));
  assert.ok(seen.size > 1, "jittered");
  for (const delay of seen) assert.ok(delay >= 200 && delay <= 400);
});

test("a Retry-After header is honoured", async () => {
  const { hub, tracker } = tracked();
  await tracker.ready;
  hub.handle = (request) =>
    request.url.endsWith("/activities") ? json(503, {}, { "Retry-After": "1" }) : hub.answer(request);
  tracker.click("x");
  const started = Date.now();
  await tracker.flush();
  hub.handle = null;
  await until(() => tracker.queued === 0, 3000);
  assert.ok(Date.now() - started >= 950);
});

test("the queue is bounded: the oldest are dropped, counted and reported", async () => {
  const hub = new FakeHub();
  hub.handle = (request) =>
    request.url.endsWith("/activities") ? Promise.reject(new TypeError("offline")) : hub.answer(request);
  const { tracker, errors, storage } = tracked({ queue: { maxSize: 3 }, batchSize: 100 }, { hub });
  await tracker.ready;
  for (const name of ["1", "2", "3", "4", "5"]) tracker.click(name);
  assert.equal(tracker.dropped, 2);
  assert.deepEqual(
    errors.flatMap((e) => (e.kind === "dropped" ? e.activities.map((a) => a.value) : [])),
    ["1", "2"],
  );
  assert.deepEqual(persisted(storage).map((a) => a.value), ["3", "4", "5"]);
});

test("the queue is persisted and sent by the next page", async () => {
  const storage = new MemoryStorage();
  const offline = new FakeHub();
  offline.handle = (request) =>
    request.url.endsWith("/activities") ? Promise.reject(new TypeError("offline")) : offline.answer(request);
  const first = tracked({ backoff: { base: 60_000 } }, { hub: offline, storage });
  await first.tracker.ready;
  first.tracker.click("kept");
  await first.tracker.flush();
  first.tracker.stop();
  const ids = persisted(storage).map((a) => a.messageId);
  assert.equal(ids.length, 1);
  // The page is closed without releasing its queue: the next one takes it once it is stale.
  const online = new FakeHub();
  const second = tracked({ queue: { storage, staleAfter: 0 } }, { hub: online, storage });
  await second.tracker.ready;
  await second.tracker.flush();
  assert.deepEqual(online.activities.map((a) => a.messageId), ids);
  assert.deepEqual(persisted(storage), []);
});

test("a live tab's queue is left to it; a released one is taken over at once", () => {
  const storage = new MemoryStorage();
  const settings = (tabId: string) => ({
    storage,
    prefix: "q:",
    tabId,
    maxSize: 10,
    staleAfter: 60_000,
    now: Date.now,
    onDrop: () => {},
  });
  const a = new Queue(settings("a"));
  const b = new Queue(settings("b"));
  a.push({ messageId: "1", type: "click", value: "x" });
  assert.equal(b.adopt(), 0);
  a.release();
  assert.equal(b.adopt(), 1);
  assert.deepEqual(b.items.map((item) => item.messageId), ["1"]);
  assert.equal(storage.getItem("q:a"), null);
  // Adopting twice (two tabs at once) duplicates, never loses: the hub dedupes by messageId.
  b.release();
  const c = new Queue(settings("c"));
  assert.equal(c.adopt(), 1);
});

test("revoking stops tracking and clears the queue, in memory and persisted", async () => {
  const hub = new FakeHub();
  hub.handle = (request) =>
    request.url.endsWith("/activities") ? Promise.reject(new TypeError("offline")) : hub.answer(request);
  const { tracker, storage } = tracked({ backoff: { base: 60_000 } }, { hub });
  await tracker.ready;
  tracker.click("queued");
  await tracker.flush();
  assert.equal(persisted(storage).length, 1);
  await tracker.revoke();
  assert.equal(tracker.queued, 0);
  assert.deepEqual(persisted(storage), []);
  assert.deepEqual(hub.sent.at(-1)!.body, { agree: false });
  tracker.click("after revoke");
  assert.equal(tracker.queued, 0);
});

test("one request per batch of batchSize; a full batch is sent at once", async () => {
  const { hub, tracker } = tracked({ batchSize: 2 });
  await tracker.ready;
  for (const name of ["a", "b", "c"]) tracker.click(name);
  await tracker.flush();
  const batches = hub.sent
    .filter((r) => r.url.endsWith("/activities"))
    .map((r) => r.body.activities.map((a: any) => a.value));
  assert.deepEqual(batches, [["a", "b"], ["c"]]);
  assert.equal(tracker.queued, 0);
});

test("a revocation the hub did not get is sent again by the next page, which does not track", async () => {
  const storage = new MemoryStorage();
  const offline = new FakeHub();
  const first = tracked({}, { hub: offline, storage });
  await first.tracker.ready;
  offline.handle = () => Promise.reject(new TypeError("offline"));
  await assert.rejects(first.tracker.revoke());
  first.tracker.stop();

  const hub = new FakeHub(); // still says "agreed": it never got the revocation
  const second = tracked({}, { hub, storage });
  second.tracker.click("x");
  await second.tracker.ready;
  assert.equal(second.tracker.consent, "denied");
  await until(() => hub.agreed === false);
  assert.deepEqual(hub.sent.map((r) => [r.method, r.body]), [["POST", { agree: false }]]);
  await second.tracker.flush();
  assert.equal(hub.activities.length, 0);
});
