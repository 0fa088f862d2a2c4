// Accounts in the browser: register, sign out, sign in, errors. Runs with JavaScript on and off.
import { expect, test } from '@playwright/test';
import { newAccount, ready, register, signIn } from './helpers';

test('a signed-out visitor is sent to the sign-in page', async ({ page }) => {
  await page.goto('/');
  await expect(page).toHaveURL(/\/login$/);
  await page.goto('/chat');
  await expect(page).toHaveURL(/\/login$/);
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
});

test('register lands on the chat shell, signed in', async ({ page }, info) => {
  const account = newAccount('reg');
  await register(page, info, account);
  await expect(page.getByTestId('whoami')).toHaveText(account.name);
  await expect(page.getByRole('complementary', { name: 'Contacts' })).toBeVisible();
  // The session survives a reload, and `/` now leads to the chat.
  await page.goto('/');
  await expect(page).toHaveURL(/\/chat$/);
});

test('sign out ends the session', async ({ page }, info) => {
  await register(page, info, newAccount('out'));
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login$/);
  await page.goto('/chat');
  await expect(page).toHaveURL(/\/login$/);
});

test('a wrong password shows the error and a right one signs in', async ({ page, request }, info) => {
  const account = newAccount('pw');
  const created = await request.post('/api/auth/register', {
    form: { name: account.name, email: account.email, password: account.password, password_confirmation: account.password },
  });
  expect(created.ok()).toBeTruthy();

  await signIn(page, info, account.email, 'not the password');
  await expect(page.getByRole('alert')).toHaveText('email or password is wrong');
  await expect(page).toHaveURL(/\/login/);

  await signIn(page, info, account.email.toUpperCase(), account.password);
  await expect(page).toHaveURL(/\/chat$/);
  await expect(page.getByTestId('whoami')).toHaveText(account.name);
});

test('registering an email twice says so next to the field', async ({ page, request }, info) => {
  const account = newAccount('dup');
  await request.post('/api/auth/register', {
    form: { name: account.name, email: account.email, password: account.password, password_confirmation: account.password },
  });
  await page.goto('/register');
  await ready(page, info);
  await page.getByLabel('Name').fill('Someone Else');
  await page.getByLabel('Email').fill(account.email);
  await page.getByLabel('Password', { exact: true }).fill('another password');
  await page.getByLabel('Confirm password').fill('another password');
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.locator('#field-email-error')).toHaveText('this email is already registered');
  await expect(page.getByLabel('Email')).toHaveAttribute('aria-invalid', 'true');
});

// Hydration exists only with JavaScript: the no-js project leaves out tests tagged @js-only.
test('once hydrated, field errors appear inline without a reload', { tag: '@js-only' }, async ({ page }, info) => {
  await page.goto('/register');
  await ready(page, info);
  // A page load would wipe this marker; an inline update keeps it.
  await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
  await page.getByLabel('Name').fill('Shorty');
  await page.getByLabel('Email').fill(newAccount('short').email);
  await page.getByLabel('Password', { exact: true }).fill('short');
  await page.getByLabel('Confirm password').fill('short');
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.locator('#field-password-error')).toHaveText('a password needs at least 8 characters');
  expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
  await expect(page).toHaveURL(/\/register$/);
});
