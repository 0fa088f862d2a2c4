// Every page and state, audited with axe-core (WCAG 2.1 A/AA): no serious or critical violations.
// Runs with JavaScript on and off.
import { expect, test } from '@playwright/test';
import { expectAccessible } from './a11y';
import { newAccount, ready } from './helpers';
import { contactRow, log, openChat, person, sendByApi } from './chat-support';

test('the sign-in page, empty and after a wrong password', async ({ page, request }, info) => {
  await page.goto('/login');
  await ready(page, info);
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
  await expectAccessible(page, 'sign-in');

  const account = newAccount('a11y-login');
  const created = await request.post('/api/auth/register', {
    form: { name: account.name, email: account.email, password: account.password, password_confirmation: account.password },
  });
  expect(created.ok()).toBeTruthy();
  await page.getByLabel('Email').fill(account.email);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toHaveText('email or password is wrong');
  await ready(page, info);
  await expectAccessible(page, 'sign-in with an error');
});

test('the register page, empty and with field errors', async ({ page }, info) => {
  await page.goto('/register');
  await ready(page, info);
  await expect(page.getByRole('heading', { name: 'Create an account' })).toBeVisible();
  await expectAccessible(page, 'register');

  await page.getByLabel('Name').fill('Shorty');
  await page.getByLabel('Email').fill(newAccount('a11y-reg').email);
  await page.getByLabel('Password', { exact: true }).fill('short');
  await page.getByLabel('Confirm password').fill('short');
  await page.getByRole('button', { name: 'Create account' }).click();
  const password = page.getByLabel('Password', { exact: true });
  await expect(password).toHaveAttribute('aria-invalid', 'true');
  await expect(password).toHaveAccessibleDescription('a password needs at least 8 characters');
  await ready(page, info);
  await expectAccessible(page, 'register with field errors');
});

test('the chat with no conversation open', async ({ browser }, info) => {
  const alice = await person(browser, info, 'a11y-a');
  const bob = await person(browser, info, 'a11y-b');
  // An unread message, so the list shows a preview, a time and a badge.
  await sendByApi(bob, alice, 'Are you there?');

  await openChat(alice, info);
  await expect(alice.page.getByRole('heading', { name: `Welcome, ${alice.name}` })).toBeVisible();
  await expect(contactRow(alice.page, bob.name)).toContainText('Are you there?');
  await expectAccessible(alice.page, 'chat, no conversation');
  await alice.page.emulateMedia({ colorScheme: 'dark' });
  await expectAccessible(alice.page, 'chat, no conversation, dark theme');
  await alice.context.close();
  await bob.context.close();
});

test('a conversation with messages', async ({ browser }, info) => {
  const alice = await person(browser, info, 'a11y-c');
  const bob = await person(browser, info, 'a11y-d');
  await sendByApi(alice, bob, 'Hello Bob, see https://example.com/guide');
  await sendByApi(bob, alice, 'Hi Alice!');
  await sendByApi(alice, bob, 'How are you?');

  await openChat(alice, info, bob);
  await expect(log(alice.page).getByRole('listitem').filter({ hasText: 'How are you?' })).toBeVisible();
  await expect(log(alice.page).getByRole('listitem').filter({ hasText: 'Hi Alice!' })).toBeVisible();
  await expectAccessible(alice.page, 'conversation');
  await alice.page.emulateMedia({ colorScheme: 'dark' });
  await expectAccessible(alice.page, 'conversation, dark theme');
  await alice.context.close();
  await bob.context.close();
});
