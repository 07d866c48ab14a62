/**
 * The bounded, persisted queue of activities not yet stored by the hub.
 *
 * Each tab writes its queue under its own key (`<prefix><tab id>`), so that no two tabs ever
 * read-modify-write the same entry (localStorage has no transactions across tabs; a shared key
 * would lose one tab's write). A tab refreshes its entry's `seen` time while it lives and marks
 * it released on `pagehide`. A tab adopts the entries of tabs that are gone (released, or not
 * seen for `staleAfter` ms): it merges their activities into its own queue (by messageId) and
 * removes their keys. If two tabs adopt the same entry, or adopt one whose tab was only slow,
 * an activity is sent twice: the hub stores it once (same messageId). Nothing is removed from a
 * queue before the hub answered for it, so nothing is lost.
 */

import type { StorageLike } from "./storage.js";

/** An activity as queued and sent: the tracking API's activity object, with its messageId. */
export interface QueuedActivity {
  messageId: string;
  type: string;
  value?: string;
  url?: string;
  referrer?: string;
  contactFields?: Record<string, string>;
}

interface Entry {
  /** When its tab last wrote it (ms since the epoch); 0 once released. */
  seen: number;
  items: QueuedActivity[];
}

export interface QueueSettings {
  storage: StorageLike | null;
  prefix: string;
  tabId: string;
  maxSize: number;
  staleAfter: number;
  now: () => number;
  /** Called with the activities dropped (oldest first) when the queue is over maxSize. */
  onDrop: (dropped: QueuedActivity[]) => void;
}

export class Queue {
  items: QueuedActivity[] = [];

  constructor(private readonly settings: QueueSettings) {}

  private get key(): string {
    return this.settings.prefix + this.settings.tabId;
  }

  /** Append one activity; over maxSize, the oldest are dropped (and reported). */
  push(item: QueuedActivity): void {
    this.items.push(item);
    this.trim();
    this.save();
  }

  /** Remove the activities the hub answered for. */
  remove(messageIds: ReadonlySet<string>): void {
    this.items = this.items.filter((item) => !messageIds.has(item.messageId));
    this.save();
  }

  /** Forget everything queued: this tab's, and with `everywhere`, every tab's entry. */
  clear(everywhere: boolean): void {
    this.items = [];
    const storage = this.settings.storage;
    if (!storage) return;
    for (const key of everywhere ? this.keys() : [this.key]) storage.removeItem(key);
  }

  /**
   * Take over the entries of tabs that are gone; answers how many activities were taken.
   */
  adopt(): number {
    const { storage, now, staleAfter } = this.settings;
    if (!storage) return 0;
    const known = new Set(this.items.map((item) => item.messageId));
    let taken = 0;
    for (const key of this.keys()) {
      if (key === this.key) continue;
      const entry = read(storage, key);
      if (entry && entry.seen !== 0 && now() - entry.seen < staleAfter) continue;
      for (const item of entry?.items ?? []) {
        if (known.has(item.messageId)) continue;
        known.add(item.messageId);
        this.items.push(item);
        taken += 1;
      }
      storage.removeItem(key);
    }
    if (taken) {
      this.trim();
      this.save();
    }
    return taken;
  }

  /** Write this tab's entry again (its `seen` time shows the tab is alive). */
  save(): void {
    this.write(this.settings.now());
  }

  /** Mark this tab's entry as free to adopt at once (the page is going away). */
  release(): void {
    this.write(0);
  }

  private write(seen: number): void {
    const storage = this.settings.storage;
    if (!storage) return;
    try {
      if (this.items.length === 0) storage.removeItem(this.key);
      else storage.setItem(this.key, JSON.stringify({ seen, items: this.items } satisfies Entry));
    } catch {
      // Storage full or blocked: the queue lives on in memory for this page.
    }
  }

  private trim(): void {
    const over = this.items.length - this.settings.maxSize;
    if (over > 0) this.settings.onDrop(this.items.splice(0, over));
  }

  private keys(): string[] {
    const storage = this.settings.storage;
    const found: string[] = [];
    if (!storage) return found;
    for (let index = 0; index < storage.length; index += 1) {
      const key = storage.key(index);
      if (key?.startsWith(this.settings.prefix)) found.push(key);
    }
    return found;
  }
}

function read(storage: StorageLike, key: string): Entry | null {
  try {
    const entry = JSON.parse(storage.getItem(key) ?? "null") as Entry | null;
    return entry && Array.isArray(entry.items) ? entry : null;
  } catch {
    return null;
  }
}
