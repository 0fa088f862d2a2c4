// The chat with and without JavaScript: escaping, the narrow layout, the contact search, the
// plain-form composer, and that without JavaScript no page fetches the app's code.
// The hydrated-only behaviour is in chat-hydrated.spec.ts.
import { expect, test } from '@playwright/test';
import { newAccount, jsEnabled } from './helpers';
import { contactRow, done, log, openChat, person, sendByApi } from './chat-support';

test('message text is text: markup shows literally and runs nothing', async ({ browser }, info) => {
  const alice = await person(browser, info, 'xss-a');
  const bob = await person(browser, info, 'xss-b');
  const evil = '<img src=x onerror=alert(1)> <script>alert(2)</script>';
  let dialogs = 0;
  for (const p of [alice, bob]) p.page.on('dialog', (d) => { dialogs += 1; void d.dismiss(); });

  await openChat(alice, info, bob);
  await alice.page.getByLabel('Message', { exact: true }).fill(evil);
  await alice.page.getByRole('button', { name: 'Send', exact: true }).click();
  await expect(log(alice.page)).toContainText(evil);

  await openChat(bob, info, alice);
  await expect(log(bob.page)).toContainText(evil);
  await expect(log(bob.page).locator('img, script')).toHaveCount(0);
  expect(dialogs).toBe(0);
  await alice.context.close();
  await bob.context.close();
});

test('a narrow screen shows one pane at a time', async ({ browser }, info) => {
  const alice = await person(browser, info, 'mobile-a');
  const bob = await person(browser, info, 'mobile-b');
  await alice.page.setViewportSize({ width: 390, height: 800 });
  // A conversation is always listed (only the 20 newest strangers are).
  await sendByApi(bob, alice, 'hello, small screen');

  await openChat(alice, info);
  const contacts = alice.page.getByRole('complementary', { name: 'Contacts' });
  const conversation = alice.page.getByRole('main', { name: 'Conversation' });
  await expect(contacts).toBeVisible();
  await expect(conversation).toBeHidden();

  await contactRow(alice.page, bob.name).click();
  await expect(alice.page).toHaveURL(new RegExp(`/chat/${bob.id}$`));
  await expect(conversation).toBeVisible();
  await expect(contacts).toBeHidden();

  await alice.page.getByRole('link', { name: 'Back to contacts' }).click();
  await expect(contacts).toBeVisible();
  await expect(conversation).toBeHidden();
  await alice.context.close();
  await bob.context.close();
});

test('without JavaScript the composer is a plain form that posts', { tag: '@no-js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'form-a');
  const bob = await person(browser, info, 'form-b');
  await openChat(alice, info, bob);
  await alice.page.getByLabel('Message', { exact: true }).fill('Sent by a plain form\nwith two lines');
  await alice.page.getByRole('button', { name: 'Send', exact: true }).click();
  // The form posts, and the server sends the browser back to the conversation.
  await expect(alice.page).toHaveURL(new RegExp(`/chat/${bob.id}\\??$`));
  await expect(log(alice.page)).toContainText('Sent by a plain form\nwith two lines');

  // An empty message is refused with a specific error, and nothing is stored.
  await alice.page.getByLabel('Message', { exact: true }).fill('   ');
  await alice.page.getByRole('button', { name: 'Send', exact: true }).click();
  await expect(alice.page.getByRole('alert')).toHaveText('a message cannot be empty');
  await expect(log(alice.page).getByRole('listitem').filter({ hasText: 'Sent by a plain form' })).toHaveCount(1);
  await alice.context.close();
  await bob.context.close();
});

test('the composer grows with what is typed, up to a limit, with or without JavaScript', async ({ browser }, info) => {
  // On a phone a one-row box that does not grow shows only the last line of what is typed.
  const alice = await person(browser, info, 'grow-a');
  const bob = await person(browser, info, 'grow-b');
  await alice.page.setViewportSize({ width: 390, height: 800 });
  await openChat(alice, info, bob);
  const box = alice.page.getByLabel('Message', { exact: true });
  const height = async () => (await box.boundingBox())!.height;
  // `byApp`: the app's code sets the height (else the browser sizes the box itself).
  const grows = async (byApp: boolean) => {
    const oneLine = await height();
    // Empty, it is one line high (its placeholder does not wrap), as with one line of text.
    expect(oneLine).toBeLessThan(45);
    await box.fill('one');
    await expect.poll(height).toBeLessThan(oneLine + 1);

    await box.fill('one\ntwo\nthree\nfour');
    // Three more lines of about 21.6 px (line-height 1.35 at 16 px), nothing scrolled out of view.
    await expect.poll(height).toBeGreaterThan(oneLine + 55);
    expect(await box.evaluate((el) => el.scrollHeight - el.clientHeight)).toBeLessThanOrEqual(0);
    expect(await box.evaluate((el) => el.style.height !== '')).toBe(byApp);

    // Past 200 px the box stops growing and scrolls.
    await box.fill(Array.from({ length: 30 }, (_, i) => `line ${i + 1}`).join('\n'));
    await expect.poll(height).toBeGreaterThan(195);
    expect(await height()).toBeLessThanOrEqual(200.5);

    await box.fill('');
    await expect.poll(height).toBeLessThan(oneLine + 1);
  };
  // Chromium sizes the box itself (CSS `field-sizing`), before hydration and without JavaScript.
  await grows(false);
  if (jsEnabled(info)) {
    // The app sizes it in browsers that cannot.
    await box.evaluate((el) => el.style.setProperty('field-sizing', 'fixed', 'important'));
    await grows(true);
  }
  await done(alice, bob);
});

test('without JavaScript no page fetches the app: no WASM, no script, on any page', { tag: '@no-js-only' }, async ({ browser }, info) => {
  // Chromium fetches a <link rel="preload"> even with scripts off: the module's preload cost
  // every first visit without JavaScript 515 KB of WASM it could not run.
  const visitor = await browser.newPage({ baseURL: info.project.use.baseURL, javaScriptEnabled: false });
  const alice = await person(browser, info, 'nowasm-a');
  const bob = await person(browser, info, 'nowasm-b');
  await sendByApi(bob, alice, 'Hello without scripts');
  // What came back from the server: a module preload is requested too, and refused by the
  // browser itself ("csp") before anything is sent, as no module runs.
  const fetched: string[] = [];
  for (const page of [visitor, alice.page]) page.on('response', (r) => fetched.push(new URL(r.url()).pathname));
  for (const at of ['/login', '/register']) {
    await visitor.goto(at);
    await expect(visitor.getByLabel('Email')).toBeVisible();
  }
  const pages: [string, () => Promise<void>][] = [
    ['/chat', () => expect(contactRow(alice.page, bob.name)).toBeVisible()],
    [`/chat/${bob.id}`, () => expect(alice.page.getByLabel('Message', { exact: true })).toBeVisible()],
    // The two pages whose code is a chunk of its own with JavaScript on.
    ['/chat/search?q=nothing+like+this', () => expect(alice.page.getByRole('main')).toContainText('No messages')],
    ['/chat/new-group', () => expect(alice.page.getByLabel('Group name')).toBeVisible()],
  ];
  for (const [at, works] of pages) {
    await alice.page.goto(at);
    await works();
  }
  expect(fetched.filter((p) => p.endsWith('.css')).length, 'the stylesheet came').toBeGreaterThan(0);
  expect(fetched.filter((p) => /\.(wasm|m?js)$/.test(p))).toEqual([]);
  await visitor.close();
  await alice.context.close();
  await bob.context.close();
});

test('the contact search finds people the list leaves out', async ({ browser, playwright }, info) => {
  const alice = await person(browser, info, 'search-a');
  const needle = await person(browser, info, 'needle-n');
  // Twenty-one people join after the needle: the list shows only the 20 newest strangers.
  const api = await playwright.request.newContext({ baseURL: info.project.use.baseURL });
  for (let i = 0; i < 21; i++) {
    const acc = newAccount('later-l');
    const response = await api.post('/api/auth/register', {
      form: { name: acc.name, email: acc.email, password: acc.password, password_confirmation: acc.password },
      headers: { accept: 'application/json' },
    });
    expect(response.ok(), await response.text()).toBeTruthy();
  }
  await api.dispose();

  await openChat(alice, info);
  const contacts = alice.page.getByRole('complementary', { name: 'Contacts' });
  await expect(contacts.locator('.contact-list').getByRole('link').first()).toBeVisible();
  await expect(contacts).toContainText('No conversations yet');
  await expect(contactRow(alice.page, needle.name)).toHaveCount(0);

  // Typing asks the server (live with JavaScript; without it the form is submitted).
  const box = contacts.getByRole('searchbox', { name: 'Search people' });
  await box.fill(needle.name.toUpperCase());
  if (!jsEnabled(info)) {
    await box.press('Enter');
    await expect(alice.page).toHaveURL(/\/chat\?q=/);
  }
  await expect(contactRow(alice.page, needle.name)).toBeVisible();
  await expect(contacts.locator('.contact-list').getByRole('link')).toHaveCount(1);
  // Whether you have talked to anyone is for the whole list to say, not for search results.
  await expect(contacts).not.toContainText('No conversations yet');

  // Nobody matches: a plain sentence, not an empty box.
  await box.fill('no such person ' + Date.now());
  if (!jsEnabled(info)) await box.press('Enter');
  await expect(contacts).toContainText('Nobody called');
  await expect(contacts.locator('.contact-list').getByRole('link')).toHaveCount(0);
  await alice.context.close();
  await needle.context.close();
});
