// A scripted stand-in for the hub's HTTP answers, and a tracker wired to it with in-memory
// storage, for the unit tests (the end-to-end tests use a real hub: tests/clients).
import { MemoryStorage, type Options, type TrackerEvent, init } from "../src/index.js";

export const CHANNEL = "252f464a-f043-424f-bf4d-f41ce6725852";
export const CONTACT = "909943bc-fb27-4a5f-8e32-200c6dc07d79";

export interface Sent {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: any;
}

type Handler = (request: Sent) => Response | Promise<Response>;

export function json(status: number, body: unknown, headers: Record<string, string> = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

/** A hub stand-in: the consent is agreed, activities answered 207 all 202, unless `handle` says. */
export class FakeHub {
  sent: Sent[] = [];
  agreed = true;
  handle: Handler | null = null;

  fetch: typeof fetch = async (input, init = {}) => {
    const request: Sent = {
      method: init.method ?? "GET",
      url: String(input),
      headers: { ...(init.headers as Record<string, string>) },
      body: init.body === undefined ? undefined : JSON.parse(String(init.body)),
    };
    this.sent.push(request);
    if (this.handle) return this.handle(request);
    return this.answer(request);
  };

  answer(request: Sent): Response {
    if (request.url.endsWith("/contacts")) return json(200, { contact: CONTACT });
    if (request.url.includes("/consents/")) {
      if (request.method === "POST") this.agreed = request.body.agree;
      return json(200, { agreed: this.agreed, isAgreed: this.agreed });
    }
    const results = request.body.activities.map(() => ({ status: 202 }));
    return json(207, { results });
  }

  /** The activities of every POST /activities, in order. */
  get activities(): any[] {
    return this.sent
      .filter((request) => request.url.endsWith("/activities"))
      .flatMap((request) => request.body.activities);
  }
}

export interface Made {
  hub: FakeHub;
  storage: MemoryStorage;
  errors: TrackerEvent[];
  tracker: ReturnType<typeof init>;
}

/** A tracker on a FakeHub; its contact already stored (so it reads the consent) unless `fresh`. */
export function make(
  options: Partial<Options> = {},
  { fresh = false, hub = new FakeHub(), storage = new MemoryStorage() } = {},
): Made {
  if (!fresh) storage.setItem("contacthub:contact", CONTACT);
  const errors: TrackerEvent[] = [];
  const tracker = init({
    endpoint: "https://site.example/Kentico.Tracking/",
    channel: CHANNEL,
    consent: "TrackingConsent",
    contactStorage: storage,
    flushInterval: 0,
    backoff: { base: 5, max: 20 },
    fetch: hub.fetch,
    onError: (event) => errors.push(event),
    ...options,
    queue: { storage, ...options.queue },
  });
  return { hub, storage, errors, tracker };
}

/** Wait until `condition` holds (polling), or fail after `ms`. */
export async function until(condition: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
