// Shared steps for the browser tests: unique accounts and waiting for hydration.
import { expect, type Page, type TestInfo } from '@playwright/test';

export type Account = { name: string; email: string; password: string };

let counter = 0;
export function newAccount(prefix = 'user'): Account {
  counter += 1;
  const id = `${Date.now().toString(36)}${process.pid}${counter}`;
  return { name: `${prefix} ${id}`, email: `${prefix}.${id}@example.com`, password: 'correct horse 42' };
}

export const jsEnabled = (info: TestInfo) => info.project.use.javaScriptEnabled !== false;

/** With JavaScript on, waits until the WASM app has hydrated the server-rendered page. */
export async function ready(page: Page, info: TestInfo) {
  if (jsEnabled(info)) {
    await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  }
}

export async function register(page: Page, info: TestInfo, account: Account) {
  await page.goto('/register');
  await ready(page, info);
  await page.getByLabel('Name').fill(account.name);
  await page.getByLabel('Email').fill(account.email);
  await page.getByLabel('Password', { exact: true }).fill(account.password);
  await page.getByLabel('Confirm password').fill(account.password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(/\/chat$/);
}

export async function signIn(page: Page, info: TestInfo, email: string, password: string) {
  await page.goto('/login');
  await ready(page, info);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}
