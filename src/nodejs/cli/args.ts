import { parseArgs, type ParseArgsConfig } from 'node:util'
import { TabmeshError } from '../../core/errors.ts'

type Options = NonNullable<ParseArgsConfig['options']>

/** Strict flag parsing: an unknown flag or a missing value is a user error, not a stack trace. */
export function parseFlags<O extends Options>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values
  } catch (err) {
    throw new TabmeshError('bad-argument', (err as Error).message)
  }
}

export function numberFlag(value: string | undefined, name: string, fallback: number, check: (n: number) => boolean = Number.isFinite): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (value.trim() === '' || !check(n)) throw new TabmeshError('bad-argument', `--${name} ${JSON.stringify(value)} is not valid`)
  return n
}
