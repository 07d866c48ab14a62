/** Where the SDK keeps things between page loads: the contact's GUID and the queue. */

/**
 * The part of the Web Storage interface the SDK uses (`window.localStorage` fits). Tests and
 * apps may pass their own.
 */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
  key(index: number): string | null;
  readonly length: number;
}

/** A storage held in memory only: lost on reload. */
export class MemoryStorage implements StorageLike {
  private readonly items = new Map<string, string>();

  get length(): number {
    return this.items.size;
  }

  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }

  setItem(key: string, value: string): void {
    this.items.set(key, String(value));
  }

  removeItem(key: string): void {
    this.items.delete(key);
  }

  key(index: number): string | null {
    return [...this.items.keys()][index] ?? null;
  }
}

/** The page's localStorage, or null where there is none (or it is blocked). */
export function localStorageOrNull(): StorageLike | null {
  try {
    const storage = globalThis.localStorage;
    const probe = "contacthub:probe";
    storage.setItem(probe, "1");
    storage.removeItem(probe);
    return storage;
  } catch {
    return null;
  }
}

/** Keeps one value: the contact's GUID. */
export interface ValueStore {
  get(): string | null;
  set(value: string): void;
  clear(): void;
}

const COOKIE_MAX_AGE = 60 * 60 * 24 * 365;

/** A first-party cookie (`SameSite=Lax`, one year, `Secure` on https pages). */
export function cookieStore(name: string): ValueStore {
  const secure = globalThis.location?.protocol === "https:" ? "; Secure" : "";
  const write = (value: string, maxAge: number): void => {
    document.cookie = `${name}=${encodeURIComponent(value)}; Path=/; Max-Age=${maxAge}; SameSite=Lax${secure}`;
  };
  return {
    get() {
      for (const part of document.cookie.split(";")) {
        const [key, ...rest] = part.trim().split("=");
        if (key === name) return decodeURIComponent(rest.join("="));
      }
      return null;
    },
    set: (value) => write(value, COOKIE_MAX_AGE),
    clear: () => write("", 0),
  };
}

/** One key of a StorageLike. */
export function storageStore(storage: StorageLike, key: string): ValueStore {
  return {
    get: () => storage.getItem(key),
    set: (value) => storage.setItem(key, value),
    clear: () => storage.removeItem(key),
  };
}
