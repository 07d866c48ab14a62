/** The tracker: records activities, gates them on consent, queues, batches and sends them. */

import { type BackoffOptions, backoffDelay, isRetryable } from "./backoff.js";
import { Queue, type QueuedActivity } from "./queue.js";
import {
  MemoryStorage,
  type StorageLike,
  type ValueStore,
  cookieStore,
  localStorageOrNull,
  storageStore,
} from "./storage.js";

/** The prefix of the hub's admin tokens: never allowed in a page. */
export const ADMIN_TOKEN_PREFIX = "cht_";
/** Chromium refuses `keepalive` bodies over 64 KiB in flight; stay under it. */
const KEEPALIVE_LIMIT = 60_000;
/** The stored consent state while a revocation has not reached the hub yet. */
const REVOKING = "revoking";
const GUID = /^[{]?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}[}]?$/i;

/** Contact fields of a data input, by the tracking API's names (`ContactEmail`, ...). */
export type ContactFields = Record<string, string>;

/** Whether the configured consent is agreed: not known yet (being read), agreed, or not. */
export type ConsentState = "unknown" | "agreed" | "denied";

/** Something lost, reported to `onError`. */
export type TrackerEvent =
  /** The hub refused one activity (its per-item 400 in a 207): it is dropped for good. */
  | { kind: "rejected"; activity: QueuedActivity; status: number; code?: string; error?: string }
  /** The hub refused a whole request with a 4xx that is not retryable: its activities are dropped. */
  | { kind: "refused"; activities: QueuedActivity[]; status: number; code?: string; error?: string }
  /** The queue was over `queue.maxSize`: these, the oldest, were dropped. */
  | { kind: "dropped"; activities: QueuedActivity[] };

/** Options of `init`. */
export interface Options {
  /** The tracking API's base URL: the site's own proxy (`/Kentico.Tracking`) or the hub's. */
  endpoint: string;
  /** The channel's tracking GUID (`contacthub channel list`). */
  channel: string;
  /** The consent's code name; nothing is sent before the contact agreed to it. */
  consent: string;
  /** A tracking key (`chk_...`), only when `endpoint` is the hub itself; never any other key. */
  apiKey?: string;
  /** Where the contact's GUID is kept (default `"localStorage"`). */
  contactStorage?: "cookie" | "localStorage" | StorageLike;
  /** Record a page visit now and on every history change (pushState, replaceState, popstate). */
  autoPageVisits?: boolean;
  queue?: {
    /** Most activities kept; the oldest are dropped beyond it (default 1000). */
    maxSize?: number;
    /** Where the queue is persisted (default `"localStorage"`). */
    storage?: "localStorage" | "memory" | StorageLike;
    /** A tab's queue not refreshed for this long (ms) is taken over by another (default 120000). */
    staleAfter?: number;
  };
  /** How often (ms) the queue is sent (default 5000; 0: only on `flush()`, hide and batch size). */
  flushInterval?: number;
  /** Most activities per request (default 100, at most the hub's 1000). */
  batchSize?: number;
  /** Retry spacing (default 1 s doubling to 60 s, jittered). */
  backoff?: BackoffOptions;
  /** Called with what is lost for good: refused, rejected or dropped activities. */
  onError?: (event: TrackerEvent) => void;
  /** The fetch function (default the global one); for tests. */
  fetch?: typeof fetch;
}

/** What one `flush()` did. */
export interface FlushResult {
  /** Activities the hub stored (per-item 202). */
  sent: number;
  /** Activities dropped because the hub refused them. */
  rejected: number;
  /** Activities still queued (to be retried, or recorded meanwhile). */
  pending: number;
  /** Whether a retry is scheduled (the hub was unreachable, busy or asked to wait). */
  retrying: boolean;
}

interface Answer {
  status: number;
  data: Record<string, unknown> | null;
  retryAfter: number;
}

/** A new random messageId (a UUID v4). */
export function newMessageId(): string {
  const crypto = globalThis.crypto;
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A tracker, made by `init`. */
export class Tracker {
  /** Activities dropped because the queue was full, since the page loaded. */
  dropped = 0;
  /** Resolves once the consent state is known (read from the hub, or its stored copy). */
  readonly ready: Promise<void>;

  private state: ConsentState = "unknown";
  private decided = false;
  private pending: QueuedActivity[] = [];
  private readonly queue: Queue;
  private readonly contactStore: ValueStore;
  private readonly agreedStore: ValueStore;
  private readonly agreedKey: string;
  private readonly fetchFn: typeof fetch;
  private readonly endpoint: string;
  private readonly batchSize: number;
  private flushing: Promise<FlushResult> | null = null;
  private attempts = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private tick: ReturnType<typeof setInterval> | undefined;
  private lastUrl: string | null = null;
  private readonly cleanups: (() => void)[] = [];

  constructor(private readonly options: Options) {
    const { endpoint, channel, consent, apiKey } = options;
    if (!endpoint) throw new Error("contacthub: `endpoint` is required");
    if (!GUID.test(channel ?? "")) throw new Error("contacthub: `channel` must be a GUID");
    if (!consent) throw new Error("contacthub: `consent` is required");
    if (apiKey?.trim().startsWith(ADMIN_TOKEN_PREFIX)) {
      throw new Error(
        "contacthub: refusing an admin token in a page; use the proxy or a tracking key",
      );
    }
    this.endpoint = endpoint.replace(/\/+$/, "");
    this.fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.batchSize = Math.min(Math.max(1, options.batchSize ?? 100), 1000);

    const shared = localStorageOrNull();
    const queueStorage = pick(options.queue?.storage ?? "localStorage", shared);
    const prefix = `contacthub:${channel.toLowerCase()}:`;
    this.agreedKey = `${prefix}agreed:${consent.toLowerCase()}`;
    const contactOption = options.contactStorage ?? "localStorage";
    const contactStorage =
      contactOption === "cookie" ? (shared ?? new MemoryStorage()) : pick(contactOption, shared);
    this.contactStore =
      contactOption === "cookie"
        ? cookieStore("contacthub_contact")
        : storageStore(contactStorage, "contacthub:contact");
    // The consent state this site last recorded, kept beside the contact.
    this.agreedStore = storageStore(contactStorage, this.agreedKey);
    this.queue = new Queue({
      storage: queueStorage,
      prefix: `${prefix}queue:`,
      tabId: newMessageId(),
      maxSize: Math.max(1, options.queue?.maxSize ?? 1000),
      staleAfter: options.queue?.staleAfter ?? 120_000,
      now: Date.now,
      onDrop: (activities) => {
        this.dropped += activities.length;
        this.report({ kind: "dropped", activities });
      },
    });

    this.listen();
    if (options.autoPageVisits) this.watchHistory();
    this.ready = this.check();
  }

  /** The contact's GUID, once created (on `agree()`); null before. */
  get contact(): string | null {
    return this.contactStore.get();
  }

  /** Whether the consent is agreed, as far as this page knows. */
  get consent(): ConsentState {
    return this.state;
  }

  /** Activities queued and not yet stored by the hub. */
  get queued(): number {
    return this.queue.items.length + this.pending.length;
  }

  /** Record a page visit: the current page unless given. */
  pageVisit(page: { url?: string; title?: string; referrer?: string } = {}): void {
    const url = page.url ?? globalThis.location?.href;
    if (!url) return;
    const referrer =
      page.referrer ?? this.lastUrl ?? (globalThis.document?.referrer || undefined);
    this.lastUrl = url;
    this.record({
      type: "pagevisit",
      url,
      value: page.title ?? (globalThis.document?.title || undefined),
      referrer,
    });
  }

  /**
   * Record a click: on an element (named by its `data-contacthub` attribute, its id, its text,
   * or its tag, in that order) or on a name.
   */
  click(target: Element | string): void {
    this.record({ type: "click", value: typeof target === "string" ? target : nameOf(target) });
  }

  /** Record a data input: the contact fields a form set, under the form's name. */
  dataInput(fields: ContactFields, form = "Form"): void {
    this.record({ type: "datainput", value: form, contactFields: { ...fields } });
  }

  /** Record an activity of a custom type (its code name, enabled on the hub). */
  custom(type: string, value?: string): void {
    this.record(value === undefined ? { type } : { type, value });
  }

  /**
   * The contact agrees to the consent: creates the contact if needed, records the agreement on
   * the hub, then tracking starts. Rejects if the hub did not record it.
   */
  async agree(): Promise<void> {
    let contact = this.contactStore.get();
    if (!contact) contact = await this.createContact();
    let answer = await this.setConsent(contact, true);
    if (answer.status === 404 && answer.data?.code === "unknown_contact") {
      // The contact was erased on the hub: start again with a new one.
      contact = await this.createContact();
      answer = await this.setConsent(contact, true);
    }
    if (answer.status !== 200) throw new Error(`contacthub: agree answered ${answer.status}`);
    this.agreedStore.set("1");
    this.decide("agreed");
  }

  /**
   * The contact revokes the consent: tracking stops at once and everything queued (in memory
   * and persisted, for every tab) is forgotten; then the revocation is recorded on the hub.
   */
  async revoke(): Promise<void> {
    // Remembered until the hub has recorded it: a later page load sends it again, and does
    // not track meanwhile, even if the hub still says "agreed".
    this.agreedStore.set(REVOKING);
    this.decide("denied");
    await this.sendRevocation();
  }

  /** Send what is queued now, in batches; resolves when the hub answered (or a retry is set). */
  flush(): Promise<FlushResult> {
    this.flushing ??= this.sendAll().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  /** Stop timers and listeners (the persisted queue stays for the next page). */
  stop(): void {
    clearInterval(this.tick);
    clearTimeout(this.retryTimer);
    for (const cleanup of this.cleanups.splice(0)) cleanup();
  }

  private record(activity: Omit<QueuedActivity, "messageId">): void {
    // Privacy first: nothing recorded while the consent is not agreed is kept.
    if (this.state === "denied") return;
    const item: QueuedActivity = { messageId: newMessageId(), ...activity };
    for (const key of Object.keys(item) as (keyof QueuedActivity)[]) {
      if (item[key] === undefined) delete item[key];
    }
    if (this.state === "unknown") {
      this.pending.push(item); // in memory until the consent check answers
      return;
    }
    this.queue.push(item);
    if (this.queue.items.length >= this.batchSize) void this.flush();
  }

  private async sendRevocation(): Promise<void> {
    const contact = this.contactStore.get();
    if (contact) {
      const answer = await this.setConsent(contact, false);
      if (answer.status !== 200 && answer.status !== 404) {
        throw new Error(`contacthub: revoke answered ${answer.status}`);
      }
    }
    if (this.agreedStore.get() === REVOKING) this.agreedStore.clear();
  }

  private async check(): Promise<void> {
    const contact = this.contactStore.get();
    let agreed = false;
    if (this.agreedStore.get() === REVOKING) {
      if (!this.decided) this.decide("denied", false);
      await this.sendRevocation().catch(() => undefined); // offline: next time
      return;
    }
    if (contact) {
      try {
        const path = `/contacts/${contact}/consents/${encodeURIComponent(this.options.consent)}`;
        const answer = await this.call("GET", path);
        if (answer.status === 200) agreed = answer.data?.isAgreed === true;
        else if (answer.status === 404 && answer.data?.code === "unknown_contact") {
          this.contactStore.clear();
        } else agreed = this.agreedStore.get() === "1";
      } catch {
        // Offline: trust what this site last recorded on the hub.
        agreed = this.agreedStore.get() === "1";
      }
    }
    if (agreed) this.agreedStore.set("1");
    else this.agreedStore.clear();
    // agree() or revoke() while the check ran: theirs is the newer answer.
    if (!this.decided) this.decide(agreed ? "agreed" : "denied", false);
  }

  private decide(state: ConsentState, final = true): void {
    this.decided ||= final;
    this.state = state;
    if (state === "denied") {
      this.pending = [];
      this.queue.clear(true);
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      return;
    }
    for (const item of this.pending.splice(0)) this.queue.push(item);
    this.attempts = 0;
    void this.flush();
  }

  private async sendAll(): Promise<FlushResult> {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const result: FlushResult = { sent: 0, rejected: 0, pending: 0, retrying: false };
    const contact = this.contactStore.get();
    if (this.state === "agreed" && contact) {
      this.queue.adopt();
      while (this.queue.items.length && this.state === "agreed" && !result.retrying) {
        await this.sendBatch(contact, this.takeBatch(contact), result);
      }
    }
    result.pending = this.queue.items.length;
    return result;
  }

  private takeBatch(contact: string): QueuedActivity[] {
    const batch = this.queue.items.slice(0, this.batchSize);
    // Keep a batch small enough to be sent with keepalive, so that it outlives the page.
    while (batch.length > 1 && this.body(contact, batch).length > KEEPALIVE_LIMIT) batch.pop();
    return batch;
  }

  private body(contact: string, batch: QueuedActivity[]): string {
    return JSON.stringify({ channel: this.options.channel, contact, activities: batch });
  }

  private async sendBatch(
    contact: string,
    batch: QueuedActivity[],
    result: FlushResult,
  ): Promise<void> {
    let answer: Answer;
    try {
      answer = await this.call("POST", "/activities", this.body(contact, batch));
    } catch {
      this.retryLater(0, result); // network error, offline
      return;
    }
    const { status, data } = answer;
    if (status === 207) {
      const results = data?.results;
      if (!Array.isArray(results) || results.length !== batch.length) {
        this.retryLater(0, result);
        return;
      }
      const done = new Set<string>();
      let retry = false;
      batch.forEach((activity, index) => {
        const item = (results[index] ?? {}) as Record<string, unknown>;
        const itemStatus = Number(item.status);
        if (itemStatus >= 200 && itemStatus < 300) {
          done.add(activity.messageId);
          result.sent += 1;
        } else if (itemStatus >= 400 && itemStatus < 500) {
          done.add(activity.messageId);
          result.rejected += 1;
          this.report({ kind: "rejected", activity, status: itemStatus, ...errorOf(item) });
        } else retry = true;
      });
      this.queue.remove(done);
      this.attempts = 0;
      if (retry) this.retryLater(0, result);
      return;
    }
    if (isRetryable(status)) {
      this.retryLater(answer.retryAfter, result);
      return;
    }
    // A whole-request refusal the same request would get again: drop the batch, say so.
    this.queue.remove(new Set(batch.map((activity) => activity.messageId)));
    result.rejected += batch.length;
    this.report({ kind: "refused", activities: batch, status, ...errorOf(data ?? {}) });
    if (data?.code === "consent_required") this.decide("denied");
    if (data?.code === "unknown_contact") {
      this.contactStore.clear();
      this.decide("denied");
    }
  }

  private retryLater(retryAfter: number, result: FlushResult): void {
    result.retrying = true;
    const delay = Math.max(backoffDelay(this.attempts, this.options.backoff), retryAfter * 1000);
    this.attempts += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.flush();
    }, delay);
  }

  private async createContact(): Promise<string> {
    const answer = await this.call("POST", "/contacts");
    const contact = answer.data?.contact;
    if (answer.status !== 200 || typeof contact !== "string") {
      throw new Error(`contacthub: creating the contact answered ${answer.status}`);
    }
    this.contactStore.set(contact);
    return contact;
  }

  private setConsent(contact: string, agree: boolean): Promise<Answer> {
    const path = `/contacts/${contact}/consents/${encodeURIComponent(this.options.consent)}`;
    return this.call("POST", path, JSON.stringify({ agree }));
  }

  private async call(method: string, path: string, body?: string): Promise<Answer> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (this.options.apiKey) headers.Authorization = `Bearer ${this.options.apiKey.trim()}`;
    const response = await this.fetchFn(this.endpoint + path, {
      method,
      headers,
      body,
      // A request in flight when the page goes away still reaches the hub.
      keepalive: body === undefined || body.length <= KEEPALIVE_LIMIT,
      credentials: "omit",
    });
    let data: Record<string, unknown> | null = null;
    try {
      data = (await response.json()) as Record<string, unknown>;
    } catch {
      // Not JSON (a proxy's error page): the status decides.
    }
    const retryAfter = Number(response.headers.get("Retry-After")) || 0;
    return { status: response.status, data, retryAfter };
  }

  private report(event: TrackerEvent): void {
    try {
      this.options.onError?.(event);
    } catch {
      // The app's hook failing must not stop tracking.
    }
  }

  private on(target: EventTarget | undefined, type: string, handler: (event: Event) => void) {
    if (!target?.addEventListener) return;
    target.addEventListener(type, handler);
    this.cleanups.push(() => target.removeEventListener(type, handler));
  }

  private listen(): void {
    const interval = this.options.flushInterval ?? 5000;
    if (interval > 0) {
      this.tick = setInterval(() => {
        this.queue.save(); // shows other tabs this one is alive
        if (!this.retryTimer && !this.flushing) void this.flush();
      }, interval);
    }
    const win = typeof window === "undefined" ? undefined : window;
    this.on(win, "online", () => {
      this.attempts = 0;
      void this.flush();
    });
    this.on(globalThis.document, "visibilitychange", () => {
      if (document.visibilityState === "hidden") void this.flush();
    });
    this.on(win, "pagehide", () => {
      void this.flush();
      this.queue.release(); // another tab may take it over at once
    });
    this.on(win, "pageshow", () => this.queue.save());
    // Another tab agreed or revoked: follow it.
    this.on(win, "storage", (event) => {
      const { key, newValue } = event as StorageEvent;
      if (key !== this.agreedKey && key !== null) return;
      if (newValue === "1") this.decide("agreed");
      else if (this.state === "agreed") this.decide("denied");
    });
  }

  private watchHistory(): void {
    const history = globalThis.history;
    if (!history) return;
    const changed = () =>
      setTimeout(() => {
        if (location.href !== this.lastUrl) this.pageVisit();
      }, 0);
    for (const method of ["pushState", "replaceState"] as const) {
      const original = history[method];
      history[method] = function (this: History, ...args: Parameters<History["pushState"]>) {
        const answer = original.apply(this, args);
        changed();
        return answer;
      };
      this.cleanups.push(() => {
        history[method] = original;
      });
    }
    this.on(globalThis.window, "popstate", changed);
    this.pageVisit();
  }
}

function pick(
  option: "localStorage" | "memory" | StorageLike,
  shared: StorageLike | null,
): StorageLike {
  if (option === "memory") return new MemoryStorage();
  if (option === "localStorage") return shared ?? new MemoryStorage();
  return option;
}

function nameOf(element: Element): string {
  const text = element.textContent?.trim().replace(/\s+/g, " ");
  return (
    element.getAttribute("data-contacthub") ||
    element.id ||
    text?.slice(0, 250) ||
    element.tagName.toLowerCase()
  );
}

function errorOf(body: Record<string, unknown>): { code?: string; error?: string } {
  const found: { code?: string; error?: string } = {};
  if (typeof body.code === "string") found.code = body.code;
  if (typeof body.error === "string") found.error = body.error;
  return found;
}
