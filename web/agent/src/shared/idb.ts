/**
 * A tiny key-value store in IndexedDB, shared by the page and the service worker (which
 * cannot use localStorage): the device token, the push registration we sent, and the
 * calls this device acknowledged (so the dial page can check what it is asked to dial).
 */
const DB = "pushdial-agent";
const STORE = "kv";

let opening: Promise<IDBDatabase> | undefined;

function db(): Promise<IDBDatabase> {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE);
      req.onsuccess = () => {
        const conn = req.result;
        // Another context upgrading the schema: let it, and reopen next time.
        conn.onversionchange = () => {
          conn.close();
          opening = undefined;
        };
        resolve(conn);
      };
      req.onerror = () => {
        opening = undefined;
        reject(req.error);
      };
    });
  }
  return opening;
}

function run<T>(mode: IDBTransactionMode, op: (s: IDBObjectStore) => IDBRequest): Promise<T> {
  return db().then(
    (conn) =>
      new Promise<T>((resolve, reject) => {
        const tx = conn.transaction(STORE, mode);
        const req = op(tx.objectStore(STORE));
        tx.oncomplete = () => resolve(req.result as T);
        tx.onerror = tx.onabort = () => reject(tx.error || req.error);
      }),
  );
}

export const kv = {
  get: <T>(key: string) => run<T | undefined>("readonly", (s) => s.get(key)),
  set: (key: string, value: unknown) => run<void>("readwrite", (s) => s.put(value, key)),
  del: (key: string) => run<void>("readwrite", (s) => s.delete(key)),
  keys: () => run<IDBValidKey[]>("readonly", (s) => s.getAllKeys()),
  clear: () => run<void>("readwrite", (s) => s.clear()),
};

/** What pairing gave this browser. */
export interface DeviceRecord {
  token: string;
  device_id: string;
  agent_id: string;
  name: string;
  paired_at: string;
}

/** A call this device acknowledged. */
export interface CallRecord {
  call_id: string;
  to: string;
  confirm: string;
  expires_at: string;
  /** Set once the dialer was opened for it, so a reload never dials twice. */
  dialed_at?: string;
}

export const device = () => kv.get<DeviceRecord>("device");
export const callRecord = (id: string) => kv.get<CallRecord>("call:" + id);
export const saveCall = (c: CallRecord) => kv.set("call:" + c.call_id, c);
