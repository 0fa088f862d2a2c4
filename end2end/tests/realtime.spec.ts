// Real time in two browsers: live delivery, typing, read receipts, presence, several tabs, going
// offline, a server restart, and the same chat through an external Pusher server.
import { expect, test, type Page } from '@playwright/test';
import { contactRow, done, live, log, openChat, person, send, sendByApi, type Person } from './chat-support';
import * as path from 'node:path';
import { BanterServer, appWithExternalPusher, encryptedProject } from './server-support';

const shot = (name: string) => path.resolve(__dirname, '../screenshots', name);

test.describe.configure({ mode: 'parallel' });

// A message by its exact body (a plain text filter would also match "burst 2" + "05:32" for "burst 20").
const item = (page: Page, text: string) =>
  log(page).getByRole('listitem').filter({ has: page.locator('.body').getByText(text, { exact: true }) });
const typingLine = (page: Page) => page.locator('.typing');

/** The bodies of the messages in the open conversation, in screen order. */
async function bodies(page: Page): Promise<string[]> {
  return log(page).locator('.message .body').allInnerTexts();
}

/**
 * End-to-end latency, measured inside the pages (one machine, one clock): Enter pressed in
 * `from`'s tab → the message drawn in `to`'s open conversation. Reported, not asserted: this
 * machine is shared and noisy.
 */
async function latency(from: Person, to: Person, n: number): Promise<string> {
  await from.page.evaluate(() => {
    const w = window as unknown as { sentAt: number };
    document.addEventListener('keydown', (e) => { if (e.key === 'Enter') w.sentAt = Date.now(); }, true);
  });
  await to.page.evaluate(() => {
    const w = window as unknown as { seen: Record<string, number> };
    w.seen = {};
    new MutationObserver(() => {
      for (const el of document.querySelectorAll('.message .body')) {
        const text = el.textContent ?? '';
        if (text.startsWith('ping ') && !(text in w.seen)) w.seen[text] = Date.now();
      }
    }).observe(document.body, { childList: true, subtree: true, characterData: true });
  });
  const samples: number[] = [];
  for (let i = 1; i <= n; i++) {
    await send(from, `ping ${i}`);
    const sentAt = await from.page.evaluate(() => (window as unknown as { sentAt: number }).sentAt);
    await expect(item(to.page, `ping ${i}`)).toBeVisible();
    const seenAt = await to.page.evaluate((t) => (window as unknown as { seen: Record<string, number> }).seen[t], `ping ${i}`);
    samples.push(seenAt - sentAt);
  }
  samples.sort((a, b) => a - b);
  return `${n} messages, median ${samples[Math.floor(n / 2)]} ms, min ${samples[0]} ms, max ${samples[n - 1]} ms`;
}

async function pair(browser: Parameters<typeof person>[0], info: Parameters<typeof person>[1], prefix: string, baseURL?: string) {
  const alice = await person(browser, info, `${prefix}-a`, undefined, baseURL);
  const bob = await person(browser, info, `${prefix}-b`, undefined, baseURL);
  return { alice, bob };
}

/** Every text frame `p`'s page receives over its WebSockets from now on. */
function framesOf(p: Person): string[] {
  const frames: string[] = [];
  p.page.on('websocket', (ws) => ws.on('framereceived', (f) => frames.push(String(f.payload))));
  return frames;
}

/**
 * What the Pusher server relayed to a browser: with encryption on (the `encrypted` project), every
 * message event came on a `private-encrypted-` channel as `{nonce, ciphertext}` and `body` is in
 * no frame; with it off, on the plain user channel.
 */
function expectWire(frames: string[], body: string) {
  const events = frames.map((f) => JSON.parse(f)).filter((f) => f.event === 'NewChatMessage');
  expect(events.length).toBeGreaterThan(0);
  for (const event of events) {
    if (encryptedProject()) {
      expect(event.channel).toMatch(/^private-encrypted-user\.\d+$/);
      expect(Object.keys(JSON.parse(event.data)).sort()).toEqual(['ciphertext', 'nonce']);
    } else {
      expect(event.channel).toMatch(/^private-user\.\d+$/);
    }
  }
  if (encryptedProject()) expect(frames.filter((f) => f.includes(body))).toEqual([]);
}

/** Ends the test's people, failing it if any of their pages met an uncaught error. */
const close = done;

test('a message appears live, its contact moves up with a badge, and ✓ turns ✓✓ when read', { tag: '@js-only' }, async ({ browser }, info) => {
  const { alice, bob } = await pair(browser, info, 'live');
  const bobFrames = framesOf(bob);
  await openChat(bob, info);
  await live(bob);
  await openChat(alice, info, bob);
  await live(alice);

  await send(alice, 'Are you there?');
  const row = contactRow(bob.page, alice.name);
  await expect(row.getByLabel('1 unread')).toBeVisible();
  await expect(row).toContainText('Are you there?');
  await expect(bob.page).toHaveTitle('(1) Banter');
  await expect(item(alice.page, 'Are you there?').getByLabel('Sent')).toBeVisible();

  // Bob opens the conversation; Alice's tick turns to read without a reload.
  await row.click();
  await expect(item(bob.page, 'Are you there?')).toBeVisible();
  await expect(item(alice.page, 'Are you there?').getByLabel('Read')).toBeVisible();
  await expect(bob.page).toHaveTitle('Banter');

  // Both open: Bob's reply appears in Alice's conversation at once, already read by her.
  await send(bob, 'Yes, right here');
  await expect(item(alice.page, 'Yes, right here')).toBeVisible();
  await expect(item(bob.page, 'Yes, right here').getByLabel('Read')).toBeVisible();
  expect(await bodies(alice.page)).toEqual(['Are you there?', 'Yes, right here']);
  expectWire(bobFrames, 'Are you there?');

  const ms = await latency(bob, alice, 10);
  console.log(`[latency] embedded server (${info.project.name}), Enter in one browser → drawn in the other: ${ms}`);
  await close(alice, bob);
});

test('a live message redraws only the contact rows it changes, and the keyboard focus stays on its row', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'keep-a');
  const bob = await person(browser, info, 'keep-b');
  const carol = await person(browser, info, 'keep-c');
  const dave = await person(browser, info, 'keep-d');
  for (const p of [bob, carol, dave]) await sendByApi(p, alice, `hello from ${p.name}`);
  await openChat(alice, info, dave);
  await live(alice);
  const focusedRow = () => alice.page.evaluate(() => document.activeElement?.closest('.contact-list a.contact')?.getAttribute('href') ?? null);
  // Which rows are still the elements they were when `keep` ran (rows of people not talked to
  // come and go as other tests register, so only these three are asked about).
  const rows = [bob, carol, dave].map((p) => `/chat/${p.id}`);
  const keep = () => alice.page.evaluate((rows) => {
    const w = window as unknown as { kept: Element[]; blurs: number };
    w.kept = rows.map((href) => document.querySelector(`.contact-list a.contact[href="${href}"]`)!);
    w.blurs = 0;
    document.activeElement?.addEventListener('blur', () => w.blurs++);
  }, rows);
  const kept = () => alice.page.evaluate((rows) => {
    const w = window as unknown as { kept: Element[]; blurs: number };
    const same = rows.filter((href, i) => document.querySelector(`.contact-list a.contact[href="${href}"]`) === w.kept[i]);
    return { same, blurs: w.blurs };
  }, rows);

  // Carol writes: her row changes and moves up; Bob's and Dave's are untouched, and the focus
  // never leaves Bob's.
  await contactRow(alice.page, bob.name).focus();
  await keep();
  await sendByApi(carol, alice, 'carol again');
  await expect(contactRow(alice.page, carol.name)).toContainText('carol again');
  await expect(alice.page.locator('.contact-list a.contact').first()).toHaveAttribute('href', `/chat/${carol.id}`);
  expect(await kept()).toEqual({ same: [`/chat/${bob.id}`, `/chat/${dave.id}`], blurs: 0 });
  expect(await focusedRow()).toBe(`/chat/${bob.id}`);

  // The focused row itself changes, and moves to the top of the list: drawn anew, it gets the
  // focus back.
  await keep();
  await sendByApi(bob, alice, 'bob again');
  await expect(contactRow(alice.page, bob.name)).toContainText('bob again');
  await expect(alice.page.locator('.contact-list a.contact').first()).toHaveAttribute('href', `/chat/${bob.id}`);
  expect((await kept()).same).toEqual([`/chat/${carol.id}`, `/chat/${dave.id}`]);
  await expect.poll(focusedRow).toBe(`/chat/${bob.id}`);

  // Enter on the focused row opens that conversation.
  await alice.page.keyboard.press('Enter');
  await expect(alice.page).toHaveURL(new RegExp(`/chat/${bob.id}$`));
  await done(alice, bob, carol, dave);
});

test("a contact row's time ages by the minute while the list stays as it is", { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'age-a');
  const bob = await person(browser, info, 'age-b');
  await alice.page.clock.install();
  await openChat(alice, info);
  await live(alice);
  await sendByApi(bob, alice, 'just now');
  const time = contactRow(alice.page, bob.name).locator('time');
  await expect(time).toHaveText('now');
  // Five minutes on this page's clock, and nothing else happens.
  await alice.page.clock.fastForward('05:00');
  await expect(time).toHaveText('5m');
  await done(alice, bob);
});

test('when the contact list cannot be read again, its rows stay under an error, and Retry brings the new list', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'stay-a');
  const bob = await person(browser, info, 'stay-b');
  const carol = await person(browser, info, 'stay-c');
  await sendByApi(bob, alice, 'hello from bob');
  await openChat(alice, info);
  await live(alice);
  const contacts = alice.page.getByRole('complementary', { name: 'Contacts' });

  // The connection to the server fails as Carol writes: the list read again after her message
  // does not arrive.
  await alice.page.route('**/api/contacts', (route) => route.abort('connectionfailed'));
  await sendByApi(carol, alice, 'hello from carol');
  await expect(contacts.getByRole('alert')).toContainText('could not reach Banter');
  await expect(contactRow(alice.page, bob.name)).toContainText('hello from bob');

  await alice.page.unroute('**/api/contacts');
  await contacts.getByRole('link', { name: 'Retry', exact: true }).click();
  await expect(contactRow(alice.page, carol.name)).toContainText('hello from carol');
  await expect(contacts.getByRole('alert')).toHaveCount(0);
  await expect(contactRow(alice.page, bob.name)).toContainText('hello from bob');
  await done(alice, bob, carol);
});

test('"is typing…" shows while the other person types and clears when the message lands', { tag: '@js-only' }, async ({ browser }, info) => {
  const { alice, bob } = await pair(browser, info, 'typing');
  await openChat(alice, info, bob);
  await openChat(bob, info, alice);
  await live(alice);
  await live(bob);
  for (const p of [alice, bob]) await expect(p.page.locator('.message-scroller')).toHaveAttribute('data-whispers', 'ready');

  const box = alice.page.getByLabel('Message', { exact: true });
  await box.pressSequentially('Just a sec', { delay: 30 });
  await expect(typingLine(bob.page)).toHaveText(`${alice.name} is typing…`);
  await bob.page.screenshot({ path: shot('typing-indicator.png') });
  await box.press('Enter');
  await expect(item(bob.page, 'Just a sec')).toBeVisible();
  await expect(typingLine(bob.page)).toHaveText('');

  // Typing and then stopping: gone after about five seconds of silence.
  await box.pressSequentially('hmm', { delay: 30 });
  await expect(typingLine(bob.page)).toHaveText(`${alice.name} is typing…`);
  await expect(typingLine(bob.page)).toHaveText('', { timeout: 9_000 });
  await close(alice, bob);
});

test('online dots follow presence: on while the other person has Banter open, off after they leave', { tag: '@js-only' }, async ({ browser }, info) => {
  const { alice, bob } = await pair(browser, info, 'presence');
  await openChat(bob, info);
  await live(bob);
  const dot = contactRow(bob.page, alice.name).getByLabel('online');
  await expect(dot).toHaveCount(0);

  // Strangers do not see each other's status; a first message makes them partners.
  await openChat(alice, info, bob);
  await live(alice);
  await expect(alice.page.getByTestId('peer-status')).toHaveText('');
  await expect(dot).toHaveCount(0);
  await send(alice, 'hi Bob');
  await expect(dot).toBeVisible();
  await expect(alice.page.getByTestId('peer-status')).toHaveText('online');
  await contactRow(bob.page, alice.name).screenshot({ path: shot('presence-online.png') });

  // A second tab of Alice's, then both closed: the dot goes only when the last one does.
  const second = await alice.context.newPage();
  await second.goto('/chat');
  await expect(second.locator('.chat-layout')).toHaveAttribute('data-live', 'connected');
  await alice.page.close();
  await expect(dot).toBeVisible();
  await second.close();
  await expect(dot).toHaveCount(0, { timeout: 10_000 });
  await close(alice, bob);
});

test('a message sent in one tab appears in my other tabs', { tag: '@js-only' }, async ({ browser }, info) => {
  const { alice, bob } = await pair(browser, info, 'tabs');
  await openChat(alice, info, bob);
  await live(alice);
  const other = await alice.context.newPage();
  await other.goto(`/chat/${bob.id}`);
  await expect(other.locator('.message-scroller')).toHaveAttribute('data-interactive', 'true');
  await expect(other.locator('.chat-layout')).toHaveAttribute('data-live', 'connected');

  await send(alice, 'from the first tab');
  await expect(item(other, 'from the first tab')).toHaveCount(1);
  await expect(item(alice.page, 'from the first tab')).toHaveCount(1);
  await expect(contactRow(other, bob.name)).toContainText('You: from the first tab');
  await close(alice, bob);
});

test('offline: nothing is lost; bob gets all 20 messages once, in order, when back', { tag: '@js-only' }, async ({ browser }, info) => {
  const { alice, bob } = await pair(browser, info, 'offline');
  await openChat(alice, info, bob);
  await openChat(bob, info, alice);
  await live(alice);
  await live(bob);

  await bob.context.setOffline(true);
  await expect(bob.page.getByRole('status').filter({ hasText: 'Offline' })).toHaveText(
    "Offline — messages will be sent when you're back",
  );
  // Bob writes while offline: it waits, marked, and goes out once he is back.
  await send(bob, 'written offline');
  await expect(item(bob.page, 'written offline')).toContainText('waiting for connection');
  await expect(bob.page.getByTestId('peer-status')).toHaveText('');
  await bob.page.screenshot({ path: shot('offline-banner.png') });

  const expected = Array.from({ length: 20 }, (_, i) => `burst ${i + 1}`);
  for (const text of expected) await send(alice, text);
  await expect(item(alice.page, 'burst 20').getByLabel('Sent')).toBeVisible();

  await bob.context.setOffline(false);
  await expect(bob.page.getByRole('status').filter({ hasText: 'Back online' })).toBeVisible();
  await expect(item(bob.page, 'burst 20')).toBeVisible();
  await expect(item(bob.page, 'written offline').getByLabel('Sent').or(item(bob.page, 'written offline').getByLabel('Read'))).toBeVisible();
  const got = (await bodies(bob.page)).filter((b) => b.startsWith('burst '));
  expect(got).toEqual(expected);
  await expect(item(alice.page, 'written offline')).toHaveCount(1);
  await close(alice, bob);
});

test('the server restarts mid-conversation: both sides reconnect and catch up', { tag: '@js-only' }, async ({ browser }, info) => {
  const server = await BanterServer.start();
  try {
    const { alice, bob } = await pair(browser, info, 'restart', server.url);
    await openChat(alice, info, bob);
    await openChat(bob, info, alice);
    await live(alice);
    await live(bob);
    await send(alice, 'before the restart');
    await expect(item(bob.page, 'before the restart')).toBeVisible();

    await server.down();
    // While it is down, Alice writes; her message waits.
    await send(alice, 'while the server was down');
    await expect(item(alice.page, 'while the server was down')).toContainText(/waiting for connection|…/);
    await server.up();

    await expect(item(bob.page, 'while the server was down')).toBeVisible({ timeout: 20_000 });
    await send(bob, 'after the restart');
    await expect(item(alice.page, 'after the restart')).toBeVisible();
    expect(await bodies(bob.page)).toEqual(['before the restart', 'while the server was down', 'after the restart']);
    expect(await bodies(alice.page)).toEqual(['before the restart', 'while the server was down', 'after the restart']);
    await close(alice, bob);
  } finally {
    await server.down();
  }
});

test('the same live chat through an external Pusher server', { tag: '@js-only' }, async ({ browser }, info) => {
  const credentials = { PUSHER_APP_ID: '777', PUSHER_APP_KEY: 'external-e2e-key', PUSHER_APP_SECRET: 'external-e2e-secret' };
  const { app, pusher } = await appWithExternalPusher(credentials);
  try {
    const { alice, bob } = await pair(browser, info, 'external', app.url);
    const sockets: string[] = [];
    bob.page.on('websocket', (ws) => sockets.push(ws.url()));
    const bobFrames = framesOf(bob);
    await openChat(alice, info, bob);
    await openChat(bob, info, alice);
    await live(alice);
    await live(bob);
    expect(sockets.some((url) => url.startsWith(`ws://127.0.0.1:${pusher.port}/app/external-e2e-key`))).toBeTruthy();

    await send(alice, 'through the external server');
    await expect(item(bob.page, 'through the external server')).toBeVisible();
    await expect(item(alice.page, 'through the external server').getByLabel('Read')).toBeVisible();
    expectWire(bobFrames, 'through the external server');
    const ms = await latency(alice, bob, 10);
    console.log(`[latency] external server (HTTP publish, ${info.project.name}), Enter in one browser → drawn in the other: ${ms}`);
    await close(alice, bob);
  } finally {
    await app.down();
    await pusher.down();
  }
});
