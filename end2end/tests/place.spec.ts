// Keeping your place: messages that arrive while you read history do not move the view (a
// "↓ N new messages" button counts them); a "New messages" divider above what you had not read,
// where the view starts when it is more than a screen; drafts kept per conversation; and an
// outbox that survives a reload and a conversation switch and sends each message once.
import { expect, test, type Page } from '@playwright/test';
import * as path from 'node:path';
import { expectAccessible } from './a11y';
import { createGroupByApi, done, live, log, openChat, person, send, sendByApi, type Person } from './chat-support';

test.describe.configure({ mode: 'parallel' });

const shot = (name: string) => path.resolve(__dirname, '../screenshots', name);

const composer = (page: Page) => page.getByLabel('Message', { exact: true });

/** The bodies of the conversation between `p` and `peer`, as the server has them. */
async function stored(p: Person, peer: Person): Promise<string[]> {
  const response = await p.context.request.post('/api/messages', { form: { peer_id: String(peer.id), limit: '100' }, headers: { accept: 'application/json' } });
  expect(response.ok()).toBeTruthy();
  return (await response.json()).messages.map((m: { body: string }) => m.body);
}

test('new messages never pull you out of history; a button counts them and takes you there', { tag: '@js-only' }, async ({ browser }, info) => {
  test.setTimeout(90_000);
  const alice = await person(browser, info, 'place-a');
  const bob = await person(browser, info, 'place-b');
  for (let i = 1; i <= 40; i++) await sendByApi(i % 2 ? bob : alice, i % 2 ? alice : bob, `history line ${i}`);
  await openChat(alice, info, bob);
  await live(alice);
  const scroller = alice.page.locator('.message-scroller');
  const button = alice.page.getByRole('button', { name: /new message/ });

  // Reading history: the view stays, the button counts.
  await scroller.evaluate((el) => (el.scrollTop = 0));
  await sendByApi(bob, alice, 'first while away');
  await expect(button).toHaveText('↓ 1 new message');
  await sendByApi(bob, alice, 'second while away');
  await expect(button).toHaveText('↓ 2 new messages');
  expect(await scroller.evaluate((el) => el.scrollTop)).toBeLessThan(50);
  await expect(log(alice.page).getByText('history line 1', { exact: true })).toBeInViewport();
  await expectAccessible(alice.page, 'new messages button');

  // The button takes you down and goes away.
  await button.click();
  await expect(log(alice.page).getByText('second while away')).toBeInViewport();
  await expect(button).toHaveCount(0);

  // At the bottom, a new message scrolls into view with no button.
  await sendByApi(bob, alice, 'seen at once');
  await expect(log(alice.page).getByText('seen at once')).toBeInViewport();
  await expect(button).toHaveCount(0);
  await done(alice, bob);
});

test('a "New messages" divider stands above what I had not read, and a long unread stretch opens there', async ({ browser }, info) => {
  test.setTimeout(90_000);
  const js = info.project.use.javaScriptEnabled !== false;
  const alice = await person(browser, info, 'div-a');
  const bob = await person(browser, info, 'div-b');
  const carol = await person(browser, info, 'div-c');
  await sendByApi(alice, bob, 'my question');
  for (let i = 1; i <= 40; i++) await sendByApi(bob, alice, `unread answer ${i}`);
  await sendByApi(carol, alice, 'just one from carol');

  await openChat(alice, info, bob);
  const divider = log(alice.page).locator('.unread-divider');
  await expect(divider).toHaveText('New messages');
  // Right above Bob's first unread message, below my own.
  const next = divider.locator('xpath=following-sibling::li[1]');
  await expect(next).toContainText('unread answer 1');
  await expect(divider.locator('xpath=preceding-sibling::li[1]')).toContainText('my question');
  if (js) {
    // More than a screen unread: the view starts at the divider, not at the newest.
    await expect(divider).toBeInViewport();
    await expect(log(alice.page).getByText('unread answer 40', { exact: true }).first()).not.toBeInViewport();
    await alice.page.screenshot({ path: shot('new-messages-divider.png') });
  }
  await expectAccessible(alice.page, 'unread divider');

  // A short unread stretch: divider shown, and the view at the newest message.
  await openChat(alice, info, carol);
  await expect(log(alice.page).locator('.unread-divider')).toHaveCount(1);
  if (js) await expect(log(alice.page).getByText('just one from carol')).toBeInViewport();

  // Read now: opened again, no divider.
  if (js) {
    await openChat(alice, info, bob);
    await expect(log(alice.page).locator('.unread-divider')).toHaveCount(0);
  }
  await done(alice, bob, carol);
});

test('a draft is kept per conversation through a reload and shown in the list', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'draft-a');
  const bob = await person(browser, info, 'draft-b');
  const carol = await person(browser, info, 'draft-c');
  await sendByApi(bob, alice, 'hello alice');
  await sendByApi(carol, alice, 'hi from carol');
  await openChat(alice, info, bob);
  await composer(alice.page).fill('half a thought for bob');
  await alice.page.reload();
  await expect(alice.page.locator('.message-scroller')).toHaveAttribute('data-interactive', 'true');
  await expect(composer(alice.page)).toHaveValue('half a thought for bob');

  // Another conversation: its own (empty) composer; Bob's row says "Draft: …".
  await alice.page.getByRole('complementary', { name: 'Contacts' }).getByRole('link', { name: new RegExp(carol.name) }).click();
  await expect(composer(alice.page)).toHaveValue('');
  const bobRow = alice.page.getByRole('complementary', { name: 'Contacts' }).getByRole('link', { name: new RegExp(bob.name) });
  await expect(bobRow).toContainText('Draft: half a thought for bob');

  // Back, sent: the draft is gone.
  await bobRow.click();
  await expect(composer(alice.page)).toHaveValue('half a thought for bob');
  await composer(alice.page).press('Enter');
  await expect(log(alice.page).getByText('half a thought for bob')).toBeVisible();
  await alice.page.reload();
  await expect(composer(alice.page)).toHaveValue('');
  await expect(bobRow).not.toContainText('Draft:');
  await done(alice, bob, carol);
});

test('a message written while sends fail survives a reload and is sent once when the connection is back', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'outbox-a');
  const bob = await person(browser, info, 'outbox-b');
  await sendByApi(bob, alice, 'are you there?');
  await openChat(alice, info, bob);
  await live(alice);
  // The sends cannot get through (as when the network drops between the tab and the server).
  await alice.page.route('**/api/messages/send', (route) => route.abort());
  await send(alice, 'kept through a reload');
  const waiting = log(alice.page).getByRole('listitem').filter({ hasText: 'kept through a reload' });
  await expect(waiting.locator('.ticks.waiting')).toBeVisible();

  await alice.page.reload();
  await expect(alice.page.locator('.message-scroller')).toHaveAttribute('data-interactive', 'true');
  await expect(waiting).toHaveCount(1);
  await expect(waiting.locator('.ticks.waiting')).toBeVisible();
  expect(await stored(bob, alice)).not.toContain('kept through a reload');

  // The connection is back: it goes out, once.
  await alice.page.unroute('**/api/messages/send');
  await alice.context.setOffline(true);
  await alice.context.setOffline(false);
  await expect(waiting.locator('.ticks.waiting')).toHaveCount(0);
  await expect.poll(async () => (await stored(bob, alice)).filter((b) => b === 'kept through a reload').length).toBe(1);
  await alice.page.reload();
  await expect(waiting).toHaveCount(1);
  expect((await stored(bob, alice)).filter((b) => b === 'kept through a reload')).toHaveLength(1);
  await done(alice, bob);
});

/** The bodies of group `room`'s messages, as the server has them for member `p`. */
async function storedInGroup(p: Person, room: number): Promise<string[]> {
  const response = await p.context.request.post('/api/groups/messages', { form: { room_id: String(room), limit: '100' }, headers: { accept: 'application/json' } });
  expect(response.ok()).toBeTruthy();
  return (await response.json()).messages.map((m: { body: string }) => m.body);
}

test('a send the server answers with "busy" (503) goes out by itself moments later, once, with no reload and no reconnect', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'busy-a');
  const bob = await person(browser, info, 'busy-b');
  await sendByApi(bob, alice, 'are you there?');
  await openChat(alice, info, bob);
  await openChat(bob, info, alice);
  await live(alice);
  await live(bob);
  // The server's own answer when every request turn is taken, twice; then it has room again.
  let refused = 0;
  await alice.page.route('**/api/messages/send', async (route) => {
    if (refused < 2) {
      refused++;
      await route.fulfill({ status: 503, headers: { 'retry-after': '1' }, contentType: 'text/plain', body: 'the server is busy; please try again' });
    } else {
      await route.continue();
    }
  });
  await send(alice, 'through once the server has room');
  const mine = log(alice.page).getByRole('listitem').filter({ hasText: 'through once the server has room' });
  await expect(mine.locator('.ticks.waiting')).toBeVisible();
  // Nothing else happens: the socket stays up, the browser stays online, nobody reloads.
  await expect(mine.locator('.ticks.waiting')).toHaveCount(0);
  expect(refused).toBe(2);
  await expect(log(bob.page).getByText('through once the server has room')).toHaveCount(1);
  await expect(alice.page.locator('.chat-layout')).toHaveAttribute('data-live', 'connected');
  expect((await stored(bob, alice)).filter((b) => b === 'through once the server has room')).toHaveLength(1);
  await alice.page.reload();
  await expect(mine).toHaveCount(1);
  await expect(mine.locator('.ticks.waiting')).toHaveCount(0);
  await done(alice, bob);
});

test('in a group, a message a proxy answered with a 502 page goes out by itself after leaving the conversation, once', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'proxy-a');
  const bob = await person(browser, info, 'proxy-b');
  await sendByApi(bob, alice, 'one to one, beside the group');
  const room = await createGroupByApi(alice, 'Proxy trouble', [bob]);
  for (const p of [alice, bob]) {
    await p.page.goto(`/chat/g/${room}`);
    await expect(p.page.locator('.message-scroller')).toHaveAttribute('data-interactive', 'true');
    await live(p);
  }
  // A load balancer whose upstream is restarting: an HTML error page, not Banter's JSON.
  let restarting = true;
  let refused = 0;
  await alice.page.route('**/api/groups/send', async (route) => {
    if (restarting) {
      refused++;
      await route.fulfill({ status: 502, contentType: 'text/html', body: '<html><body><h1>502 Bad Gateway</h1></body></html>' });
    } else {
      await route.continue();
    }
  });
  await send(alice, 'sent after the restart');
  const mine = log(alice.page).getByRole('listitem').filter({ hasText: 'sent after the restart' });
  await expect(mine.locator('.ticks.waiting')).toBeVisible();
  // Alice opens her conversation with Bob (the chat shell now owns the waiting message) and the
  // upstream comes back after a few refused tries.
  await alice.page.getByRole('complementary', { name: 'Contacts' }).locator(`a[href="/chat/${bob.id}"]`).click();
  await expect(log(alice.page).getByText('one to one, beside the group')).toBeVisible();
  await expect.poll(() => refused).toBeGreaterThanOrEqual(2);
  restarting = false;
  await expect(log(bob.page).getByText('sent after the restart')).toHaveCount(1, { timeout: 30_000 });
  expect((await storedInGroup(bob, room)).filter((b) => b === 'sent after the restart')).toHaveLength(1);
  await alice.page.goto(`/chat/g/${room}`);
  await expect(alice.page.locator('.message-scroller')).toHaveAttribute('data-interactive', 'true');
  await expect(mine).toHaveCount(1);
  await expect(mine.locator('.ticks.waiting')).toHaveCount(0);
  await expectAccessible(alice.page, 'group outbox after a 502');
  await done(alice, bob);
});

test('a message waiting in the outbox is sent once, to the right person, after switching conversations and reloading', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'switch-a');
  const bob = await person(browser, info, 'switch-b');
  const carol = await person(browser, info, 'switch-c');
  await sendByApi(bob, alice, 'are you there?');
  await sendByApi(carol, alice, 'hi from carol');
  await openChat(alice, info, bob);
  await live(alice);
  await alice.page.route('**/api/messages/send', (route) => route.abort());
  await send(alice, 'for bob, written while sends fail');
  await expect(log(alice.page).getByRole('listitem').filter({ hasText: 'for bob, written while sends fail' }).locator('.ticks.waiting')).toBeVisible();

  // Alice leaves for Carol's conversation (Bob's message is not in this log) and reloads there.
  const contacts = alice.page.getByRole('complementary', { name: 'Contacts' });
  await contacts.getByRole('link', { name: new RegExp(carol.name) }).click();
  await expect(log(alice.page).getByText('hi from carol')).toBeVisible();
  await expect(log(alice.page).getByText('for bob, written while sends fail')).toHaveCount(0);
  await alice.page.reload();
  await expect(alice.page.locator('.message-scroller')).toHaveAttribute('data-interactive', 'true');
  expect(await stored(bob, alice)).not.toContain('for bob, written while sends fail');

  // The connection is back while Carol's conversation is open: Bob gets it once, Carol never.
  await alice.page.unroute('**/api/messages/send');
  await alice.context.setOffline(true);
  await alice.context.setOffline(false);
  await expect.poll(async () => (await stored(bob, alice)).filter((b) => b === 'for bob, written while sends fail').length).toBe(1);
  expect(await stored(carol, alice)).not.toContain('for bob, written while sends fail');
  await expect(log(alice.page).getByText('for bob, written while sends fail')).toHaveCount(0);

  // Back in Bob's conversation it shows once, sent, and nothing more goes out.
  await contacts.getByRole('link', { name: new RegExp(bob.name) }).click();
  const sent = log(alice.page).getByRole('listitem').filter({ hasText: 'for bob, written while sends fail' });
  await expect(sent).toHaveCount(1);
  await expect(sent.locator('.ticks.waiting')).toHaveCount(0);
  await alice.page.reload();
  await expect(sent).toHaveCount(1);
  expect((await stored(bob, alice)).filter((b) => b === 'for bob, written while sends fail')).toHaveLength(1);
  await done(alice, bob, carol);
});
