// The `tabmesh` command (Node): generate, convert, describe, start, relay, contribute, chat, audit. The
// browser backends and the swarm commands run in headless Chromium on src/cli-tab's page.
import { isUserError } from '../../core/errors.ts'
import { AUDIT_USAGE, auditCommand } from './audit.ts'
import { CONVERT_USAGE, convertCommand } from './convert.ts'
import { DESCRIBE_USAGE, describeCommand } from './describe.ts'
import { GENERATE_USAGE, generateCommand } from './generate.ts'
import { RELAY_USAGE, relayCommand } from './relay.ts'
import { START_USAGE, startCommand } from './start.ts'
import { CHAT_USAGE, CONTRIBUTE_USAGE, chatCommand, contributeCommand } from './swarm.ts'

const USAGE = `usage: tabmesh <command> [options]

commands:
${GENERATE_USAGE}

${START_USAGE}

${RELAY_USAGE}

${CONTRIBUTE_USAGE}

${CHAT_USAGE}

${CONVERT_USAGE}

${DESCRIBE_USAGE}

${AUDIT_USAGE}`

/** Runs one CLI command; returns the exit code. User errors print one line, no stack trace. */
export async function main(argv: string[], out = (line: string) => console.log(line), err = (line: string) => console.error(line)): Promise<number> {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case 'generate':
        return await generateCommand(rest, out)
      case 'start':
        return await startCommand(rest, out)
      case 'relay':
        return await relayCommand(rest, out)
      case 'contribute':
        return await contributeCommand(rest, out)
      case 'chat':
        return await chatCommand(rest, out)
      case 'convert':
        return await convertCommand(rest, out)
      case 'describe':
        return await describeCommand(rest, out)
      case 'audit':
        return await auditCommand(rest, out)
      case undefined:
      case 'help':
      case '--help':
        out(USAGE)
        return command === undefined ? 2 : 0
      default:
        err(`tabmesh: unknown command "${command}"\n\n${USAGE}`)
        return 2
    }
  } catch (e) {
    if (isUserError(e)) {
      err(`tabmesh: ${e.message}`)
      return e.code === 'bad-argument' ? 2 : 1
    }
    throw e
  }
}
