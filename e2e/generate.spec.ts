import { expect, test } from '@playwright/test'
import { goldenIds } from '../src/test/golden.ts'

const goldenIdsText = goldenIds().slice(1).join(' ')

test('the built site generates the golden in a Web Worker', async ({ page }) => {
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  await page.goto('/')
  expect(await page.evaluate(() => crossOriginIsolated)).toBe(true)
  await expect(page.getByTestId('status')).toContainText('ready', { timeout: 30_000 })
  expect(page.workers().some((w) => w.url().includes('engine.worker'))).toBe(true)

  await page.getByLabel('Prompt').fill('')
  await page.getByLabel('Max tokens').fill('64')
  await page.getByLabel('Temperature').fill('0')
  await page.getByRole('button', { name: 'Generate' }).click()
  const output = page.getByTestId('output')
  await expect(output).toHaveAttribute('data-done', 'true', { timeout: 60_000 })
  expect(await output.getAttribute('data-ids')).toBe(goldenIdsText)
  await expect(output).toContainText('Once upon a time, there was a little girl named Lily.')
  expect(errors).toEqual([])
})

test('a prompt past the context window gets a clear message and the tab keeps working', async ({ page }) => {
  await page.goto('/')
  await expect(page.getByTestId('status')).toContainText('ready', { timeout: 30_000 })
  await page.getByLabel('Max tokens').fill('600')
  await page.getByRole('button', { name: 'Generate' }).click()
  await expect(page.getByTestId('status')).toContainText("the model's context window is 512")
  await page.getByLabel('Max tokens').fill('8')
  await page.getByRole('button', { name: 'Generate' }).click()
  await expect(page.getByTestId('output')).toHaveAttribute('data-done', 'true')
})
