#!/usr/bin/env node
// The `tabmesh` command. The CLI is TypeScript; tsx loads it without a build step.
import { register } from 'tsx/esm/api'

register()
const { main } = await import('./main.ts')
// signals, and the npm wrapper going away, stop the process and its browsers (lifetime.ts)
const { guardProcess, finish, failed } = await import('./lifetime.ts')
guardProcess()
try {
  finish(await main(process.argv.slice(2)))
} catch (err) {
  failed(err)
}
