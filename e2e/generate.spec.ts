import { expect, test, type Page } from '@playwright/test'
import { goldenIds } from '../testing/golden.ts'

const goldenIdsText = goldenIds().slice(1).join(' ')

/** The chat view set to run the whole model in this tab (no swarm: this suite runs no contributors). */
async function chatLocally(page: Page, maxTokens: number) {
  await page.goto('/#chat')
  await page.getByLabel('Run on').selectOption('local')
  await page.getByLabel('Temperature').fill('0')
  await page.getByLabel('Max tokens').fill(String(maxTokens))
}

const lastReply = (page: Page) => page.locator('[data-role="assistant"]').last()

test('the built site generates the golden in a Web Worker', async ({ page }) => {
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  await chatLocally(page, 64)
  expect(await page.evaluate(() => crossOriginIsolated)).toBe(true)
  await page.getByLabel('Message', { exact: true }).fill('')
  await page.getByRole('button', { name: 'Send', exact: true }).click()
  const reply = lastReply(page)
  await expect(reply).toHaveAttribute('data-status', 'done', { timeout: 60_000 })
  expect(page.workers().some((w) => w.url().includes('engine.worker'))).toBe(true)
  expect(await reply.getAttribute('data-ids')).toBe(goldenIdsText)
  await expect(reply).toContainText('Once upon a time, there was a little girl named Lily.')
  await expect(reply).toContainText('this tab')
  expect(errors).toEqual([])
})

test('a prompt past the context window gets a clear message and the tab keeps working', async ({ page }) => {
  await chatLocally(page, 64)
  await page.getByLabel('Message', { exact: true }).fill('Once upon a time '.repeat(200))
  await page.getByRole('button', { name: 'Send', exact: true }).click()
  await expect(page.getByTestId('reply-error')).toHaveAttribute('data-code', 'context-window', { timeout: 60_000 })
  await expect(page.getByTestId('reply-error')).toContainText("Prompt too long: the prompt (")
  await expect(page.getByTestId('reply-error')).toContainText("the model's context window is 512")
  await page.getByRole('button', { name: 'New', exact: true }).click()
  await page.getByLabel('Max tokens').fill('8')
  await page.getByLabel('Message', { exact: true }).fill('Once upon a time')
  await page.getByRole('button', { name: 'Send', exact: true }).click()
  await expect(lastReply(page)).toHaveAttribute('data-status', 'done', { timeout: 60_000 })
  expect((await lastReply(page).getAttribute('data-ids'))!.split(' ')).toHaveLength(8)
})
