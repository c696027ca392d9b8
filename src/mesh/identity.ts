/**
 * A tab's persistent libp2p identity, kept in IndexedDB (via idb) so a returning tab keeps its
 * peer id, and with it its place in other peers' tables and histories.
 *
 * Tabs of one browser profile share IndexedDB but must not share a peer id. Each tab therefore
 * takes the first free identity slot, held with a Web Lock for the tab's lifetime: one tab always
 * gets slot 0 (the same id every visit); a second tab open at the same time gets slot 1, and so on.
 */
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { openDB } from 'idb'

const DB_NAME = 'tabmesh-identity'
const STORE = 'keys'
const LOCK_PREFIX = 'tabmesh-identity-slot-'

export interface TabIdentity {
  privateKey: PrivateKey
  /** Which slot this tab holds; slot 0 for a lone tab. */
  slot: number
  /** True when the key was created now rather than loaded. */
  created: boolean
  /** Frees the slot (the lock is also released when the tab closes). */
  release(): void
}

export interface IdentityOptions {
  /** Slots to try before falling back to a throwaway identity (default 32). */
  maxSlots?: number
  /** Database name, for tests that need separate stores (default 'tabmesh-identity'). */
  dbName?: string
}

/** Loads (or creates and stores) the identity of the first free slot. */
export async function loadTabIdentity(options: IdentityOptions = {}): Promise<TabIdentity> {
  const maxSlots = options.maxSlots ?? 32
  const throwaway = async (): Promise<TabIdentity> => ({ privateKey: await generateKeyPair('Ed25519'), slot: -1, created: true, release: () => {} })
  let db: Awaited<ReturnType<typeof openDB>>
  try {
    db = await openDB(options.dbName ?? DB_NAME, 1, {
      upgrade(database) {
        database.createObjectStore(STORE)
      },
    })
  } catch {
    // no IndexedDB here (e.g. an embedded iframe whose browser blocks third-party storage): an identity that is not kept
    return throwaway()
  }
  try {
    for (let slot = 0; slot < maxSlots; slot++) {
      const release = await tryLock(`${LOCK_PREFIX}${options.dbName ?? DB_NAME}-${slot}`)
      if (!release) continue
      const stored: unknown = await db.get(STORE, slot)
      if (stored instanceof Uint8Array) {
        try {
          return { privateKey: privateKeyFromProtobuf(stored), slot, created: false, release }
        } catch {
          // a damaged record: replace it below
        }
      }
      const privateKey = await generateKeyPair('Ed25519')
      await db.put(STORE, privateKeyToProtobuf(privateKey), slot)
      return { privateKey, slot, created: true, release }
    }
  } finally {
    db.close()
  }
  // every slot is held by an open tab: this one gets a fresh identity that is not kept
  return throwaway()
}

/** Takes an exclusive Web Lock if it is free; resolves to its release function, or undefined. */
function tryLock(name: string): Promise<(() => void) | undefined> {
  if (typeof navigator === 'undefined' || !navigator.locks) return Promise.resolve(() => {})
  return new Promise((resolveTaken) => {
    navigator.locks
      .request(name, { ifAvailable: true }, (lock) => {
        if (!lock) {
          resolveTaken(undefined)
          return undefined
        }
        return new Promise<void>((releaseLock) => resolveTaken(() => releaseLock()))
      })
      .catch(() => resolveTaken(undefined))
  })
}
