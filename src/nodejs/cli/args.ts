import { parseArgs, type ParseArgsConfig } from 'node:util'
import { clip, quoted, TabmeshError } from '../../core/errors.ts'

type Options = NonNullable<ParseArgsConfig['options']>

/** Strict flag parsing: an unknown flag or a missing value is a user error, not a stack trace. */
export function parseFlags<O extends Options>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values
  } catch (err) {
    // node's message quotes the offending argument (twice): a megabyte argument stays out of it
    throw new TabmeshError('bad-argument', clip((err as Error).message, 300))
  }
}

export function numberFlag(value: string | undefined, name: string, fallback: number, check: (n: number) => boolean = Number.isFinite): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (value.trim() === '' || !check(n)) throw new TabmeshError('bad-argument', `--${name} ${quoted(value, 40)} is not valid`)
  return n
}
