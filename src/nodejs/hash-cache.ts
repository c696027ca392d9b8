/**
 * The sha256s the registry lists (each model file, and each part as loaded) cost a full read of
 * every weight, twice; a multi-GB model took minutes at every `tabmesh start`. They are kept in a
 * small JSON cache keyed by each file's (path, size, mtimeMs): a file whose size or modification
 * time changed is hashed again, the others are not. The cache lives in the models directory
 * (`.tabmesh-cache/hashes.json`) when that is writable, else in $XDG_CACHE_HOME/tabmesh (or
 * ~/.cache/tabmesh), else in the temp directory; a cache that is missing, unreadable or corrupt
 * is ignored and rewritten. A file changed in place with its size and mtime restored would keep
 * its old hash: the tabs would then refuse its slices (they check every part), never accept them.
 */
import { createHash } from 'node:crypto'
import { createReadStream, constants as fsConstants } from 'node:fs'
import { access, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { homedir, tmpdir, userInfo } from 'node:os'
import { join, relative } from 'node:path'

/** Bumped whenever what a part hash covers changes (integrity.ts), so old part hashes are dropped. */
const PART_HASH_VERSION = 1
const CACHE_VERSION = 1
/** Files at least this big get progress lines while they are hashed. */
export const PROGRESS_MIN_BYTES = 256 * 2 ** 20
const PROGRESS_EVERY_MS = 1000

export interface HashEvents {
  /** Called each time something is really hashed (a file, or a model's parts), never for a cache hit. */
  onHash?: (what: { kind: 'file' | 'parts'; path: string }) => void
  /** Progress lines while something large is hashed, e.g. "hashing model.gguf: 1.2 / 3.8 GB". */
  progress?: (line: string) => void
  /** Problems that cost only time (the cache cannot be written). */
  warn?: (message: string) => void
}

interface FileRecord { size: number; mtimeMs: number; sha256: string }
export interface PartHashes { parts: Record<string, string>; partBytes: Record<string, number> }
interface PartsRecord extends PartHashes { key: string }
interface CacheData { version: number; files: Record<string, FileRecord>; parts: Record<string, PartsRecord> }

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const isStringMap = (v: unknown) => isRecord(v) && Object.values(v).every((x) => typeof x === 'string')
const isNumberMap = (v: unknown) => isRecord(v) && Object.values(v).every((x) => typeof x === 'number')

/** The cache's contents, or an empty cache when the JSON is not one this version wrote. */
function parseCache(text: string): CacheData {
  const empty: CacheData = { version: CACHE_VERSION, files: {}, parts: {} }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return empty
  }
  if (!isRecord(json) || json.version !== CACHE_VERSION || !isRecord(json.files) || !isRecord(json.parts)) return empty
  const files: Record<string, FileRecord> = {}
  for (const [k, v] of Object.entries(json.files)) {
    if (isRecord(v) && typeof v.size === 'number' && typeof v.mtimeMs === 'number' && typeof v.sha256 === 'string' && /^[0-9a-f]{64}$/.test(v.sha256)) files[k] = { size: v.size, mtimeMs: v.mtimeMs, sha256: v.sha256 }
  }
  const parts: Record<string, PartsRecord> = {}
  for (const [k, v] of Object.entries(json.parts)) {
    if (isRecord(v) && typeof v.key === 'string' && isStringMap(v.parts) && isNumberMap(v.partBytes)) parts[k] = { key: v.key, parts: v.parts as Record<string, string>, partBytes: v.partBytes as Record<string, number> }
  }
  return { version: CACHE_VERSION, files, parts }
}

const formatBytes = (n: number, unit: 'GB' | 'MB') => (unit === 'GB' ? (n / 1e9).toFixed(1) : String(Math.round(n / 1e6)))

/** Calls `report` at most once a second, and once at the end. */
function throttled(report: (final: boolean) => void) {
  let last = 0
  return {
    tick() {
      const now = Date.now()
      if (now - last >= PROGRESS_EVERY_MS) {
        last = now
        report(false)
      }
    },
    done: () => report(true),
  }
}

/** sha256 of a file, streamed (any size), with progress lines for a large one. */
export async function sha256File(path: string, progress?: (line: string) => void, label = path): Promise<string> {
  const size = (await stat(path)).size
  const hash = createHash('sha256')
  let done = 0
  const unit = size >= 1e9 ? 'GB' : 'MB'
  const line = progress && size >= PROGRESS_MIN_BYTES ? throttled(() => progress(`hashing ${label}: ${formatBytes(done, unit)} / ${formatBytes(size, unit)} ${unit}`)) : undefined
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 })) {
    hash.update(chunk as Buffer)
    done += (chunk as Buffer).length
    line?.tick()
  }
  line?.done()
  return hash.digest('hex')
}

/** Progress lines for the parts of a large model ("hashing parts of m: 12 / 34"). */
export function partsProgress(label: string, total: number, progress?: (line: string) => void) {
  let done = 0
  const line = progress ? throttled(() => progress(`hashing parts of ${label}: ${done} / ${total}`)) : undefined
  return {
    step() {
      done++
      if (done === total) line?.done()
      else line?.tick()
    },
  }
}

const sameFile = (a: { size: number; mtimeMs: number }, b: { size: number; mtimeMs: number }) => a.size === b.size && a.mtimeMs === b.mtimeMs

/** Whether `dir` may be written, honouring a read-only mode even for root (who may write anyway). */
async function writableDir(dir: string): Promise<boolean> {
  try {
    const s = await stat(dir)
    if (!s.isDirectory() || (s.mode & 0o222) === 0) return false
    await access(dir, fsConstants.W_OK)
    return true
  } catch {
    return false
  }
}

/** Where the cache of `modelsDir` lives: the first of the candidate places that can be written. */
export async function cacheFileFor(modelsDir: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if (await writableDir(modelsDir)) {
    const dir = join(modelsDir, '.tabmesh-cache')
    try {
      await mkdir(dir, { recursive: true })
      if (await writableDir(dir)) return join(dir, 'hashes.json')
    } catch {
      // fall through to the user's cache
    }
  }
  const name = `hashes-${createHash('sha256').update(modelsDir).digest('hex').slice(0, 16)}.json`
  let uid = 'user'
  try {
    uid = String(userInfo().uid)
  } catch {
    // no user database entry: a shared name is fine
  }
  const candidates = [env.XDG_CACHE_HOME ? join(env.XDG_CACHE_HOME, 'tabmesh') : undefined, env.HOME || homedir() ? join(env.HOME || homedir(), '.cache', 'tabmesh') : undefined, join(tmpdir(), `tabmesh-cache-${uid}`)]
  for (const dir of candidates) {
    if (!dir) continue
    try {
      await mkdir(dir, { recursive: true })
      if (await writableDir(dir)) return join(dir, name)
    } catch {
      // next candidate
    }
  }
  return undefined
}

export class HashCache {
  private used: CacheData = { version: CACHE_VERSION, files: {}, parts: {} }
  private dirty = false

  private constructor(readonly modelsDir: string, readonly file: string | undefined, private readonly data: CacheData, private readonly events: HashEvents) {}

  /** The cache of `modelsDir` (`file` overrides where it lives; `false` keeps nothing on disk). */
  static async open(modelsDir: string, events: HashEvents = {}, file?: string | false): Promise<HashCache> {
    const where = file === false ? undefined : (file ?? (await cacheFileFor(modelsDir)))
    let text = ''
    if (where) {
      try {
        text = await readFile(where, 'utf8')
      } catch {
        // no cache yet, or unreadable: start empty
      }
    }
    return new HashCache(modelsDir, where, parseCache(text), events)
  }

  private key(path: string) {
    return relative(this.modelsDir, path)
  }

  /** The sha256 of the file at `path`, from the cache when its size and mtime are those recorded. */
  async fileSha256(path: string, label?: string): Promise<string> {
    const key = this.key(path)
    const before = await stat(path)
    const hit = this.data.files[key]
    if (hit && sameFile(hit, before)) {
      this.used.files[key] = hit
      return hit.sha256
    }
    this.events.onHash?.({ kind: 'file', path })
    const sha256 = await sha256File(path, this.events.progress, label)
    const after = await stat(path)
    // a file that changed while it was read keeps no record: its next scan hashes it again
    if (sameFile(before, after)) {
      this.used.files[key] = { size: after.size, mtimeMs: after.mtimeMs, sha256 }
      this.dirty = true
    }
    return sha256
  }

  /**
   * A model's part hashes, from the cache when `files` (every file of the model with its size
   * and mtime) are those they were computed from; else `compute()`.
   */
  async parts(folder: string, files: { name: string; size: number; mtimeMs: number }[], compute: () => Promise<PartHashes>): Promise<PartHashes> {
    const key = this.key(folder)
    const identity = JSON.stringify([PART_HASH_VERSION, files.map((f) => [f.name, f.size, f.mtimeMs])])
    const hit = this.data.parts[key]
    if (hit && hit.key === identity) {
      this.used.parts[key] = hit
      return { parts: { ...hit.parts }, partBytes: { ...hit.partBytes } }
    }
    this.events.onHash?.({ kind: 'parts', path: folder })
    const computed = await compute()
    this.used.parts[key] = { key: identity, ...computed }
    this.dirty = true
    return computed
  }

  /**
   * Writes the cache (atomically: a temp file renamed over it). `prune` keeps only what this
   * session used (a full scan: files that are gone drop out); otherwise earlier records stay.
   */
  async save(prune: boolean): Promise<void> {
    if (!this.file) return
    const out: CacheData = prune
      ? this.used
      : { version: CACHE_VERSION, files: { ...this.data.files, ...this.used.files }, parts: { ...this.data.parts, ...this.used.parts } }
    const stale = prune && (Object.keys(this.data.files).some((k) => !(k in this.used.files)) || Object.keys(this.data.parts).some((k) => !(k in this.used.parts)))
    if (!this.dirty && !stale) return
    const tmp = `${this.file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
    try {
      await writeFile(tmp, JSON.stringify(out))
      await rename(tmp, this.file)
      this.dirty = false
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => {})
      this.events.warn?.(`cannot write the hash cache ${this.file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); the next start hashes the models again`)
    }
  }
}
