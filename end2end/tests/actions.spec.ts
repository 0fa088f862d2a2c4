// Message actions in two browsers: edit, delete, reply (with a jump to an original that is not
// loaded yet), react and unreact, each seen live by the other person and kept after a reload; the
// same changes made while the other tab was offline; a late answer that must not undo a newer
// change; the emoji picker and `:shortcode` completion by keyboard; emoji-only messages shown
// large; markup shown as text; plain forms without JavaScript; and screenshots of a conversation
// with all of it.
import { expect, test, type Page } from '@playwright/test';
import * as path from 'node:path';
import { expectAccessible } from './a11y';
import { createGroupByApi, done, live, log, openChat, person, send, sendByApi as sendApi, type Person } from './chat-support';

test.describe.configure({ mode: 'parallel' });

const shot = (name: string) => path.resolve(__dirname, '../screenshots', name);

/** A message by its exact text. */
const item = (page: Page, text: string) =>
  log(page).getByRole('listitem').filter({ has: page.locator('.body').getByText(text, { exact: true }) });
const tombstones = (page: Page) => log(page).locator('.message .tombstone');

/** Opens the "⋯" menu of the message `text` and returns it. */
async function menu(page: Page, text: string) {
  const message = item(page, text);
  await message.hover();
  await message.getByLabel('Message actions').click();
  return message.locator('.actions-menu');
}

async function pair(browser: Parameters<typeof person>[0], info: Parameters<typeof person>[1], prefix: string) {
  const alice = await person(browser, info, `${prefix}-a`);
  const bob = await person(browser, info, `${prefix}-b`);
  return { alice, bob };
}

test('edit, reply, react and delete are seen live by the other person and survive a reload', { tag: '@js-only' }, async ({ browser }, info) => {
  // 56 messages of history first (the send limit makes that take about 10 s), then many steps.
  test.setTimeout(120_000);
  const { alice, bob } = await pair(browser, info, 'act');
  // The message Bob will answer, then enough history that it is not on the first page.
  const original = await sendApi(alice, bob, 'Where do we meet?\nI can do noon');
  for (let i = 1; i <= 55; i++) await sendApi(i % 2 ? bob : alice, i % 2 ? alice : bob, `filler ${i}`);
  await openChat(alice, info, bob);
  await openChat(bob, info, alice);
  await live(alice);
  await live(bob);

  // Edit: Alice fixes a typo; both see the new text, marked edited.
  await send(alice, 'See you at the caffe');
  await (await menu(alice.page, 'See you at the caffe')).getByRole('link', { name: 'Edit' }).click();
  const editBox = alice.page.getByLabel('Edit message');
  await expect(editBox).toBeFocused();
  await editBox.fill('See you at the café');
  await editBox.press('Enter');
  for (const p of [alice, bob]) {
    await expect(item(p.page, 'See you at the café')).toContainText('(edited)');
    await expect(item(p.page, 'See you at the caffe')).toHaveCount(0);
  }

  // Esc cancels an edit and keeps the text.
  await (await menu(alice.page, 'See you at the café')).getByRole('link', { name: 'Edit' }).click();
  await alice.page.getByLabel('Edit message').fill('never saved');
  await alice.page.keyboard.press('Escape');
  await expect(alice.page.getByLabel('Edit message')).toHaveCount(0);
  await expect(item(alice.page, 'See you at the café')).toBeVisible();

  // React: Bob adds 👍 from the quick palette; Alice sees the chip, adds hers; Bob takes his back.
  await (await menu(bob.page, 'See you at the café')).getByRole('button', { name: 'React with 👍' }).click();
  const chip = (p: Person) => item(p.page, 'See you at the café').locator('.reaction').filter({ hasText: '👍' });
  await expect(chip(alice)).toContainText('1');
  await expect(chip(alice)).toHaveAttribute('title', `${bob.name} reacted with 👍`);
  await expect(chip(bob)).toHaveAttribute('aria-pressed', 'true');
  await chip(alice).click();
  await expect(chip(bob)).toContainText('2');
  await chip(bob).click();
  await expect(chip(alice)).toContainText('1');
  await expect(chip(alice)).toHaveAttribute('title', `${alice.name} reacted with 👍`);
  await expect(chip(bob)).toHaveAttribute('aria-pressed', 'false');

  // Reply: Bob answers the café message; the quote shows on both sides.
  await (await menu(bob.page, 'See you at the café')).getByRole('button', { name: 'Reply' }).click();
  await expect(bob.page.locator('.replying')).toContainText('See you at the café');
  await expect(bob.page.getByLabel('Message', { exact: true })).toBeFocused();
  await send(bob, 'Perfect');
  for (const p of [alice, bob]) {
    await expect(item(p.page, 'Perfect').locator('.quote')).toContainText(alice.name);
    await expect(item(p.page, 'Perfect').locator('.quote')).toContainText('See you at the café');
  }
  await expect(bob.page.locator('.replying')).toHaveCount(0);

  // A reply to a message that is not loaded: choosing its quote loads older history and shows it.
  await sendApi(bob, alice, 'Noon works', { reply_to_id: String(original.id) });
  await expect(item(alice.page, 'Noon works').locator('.quote')).toContainText('Where do we meet?');
  await expect(log(alice.page).locator(`#m-${original.id}`)).toHaveCount(0);
  await item(alice.page, 'Noon works').locator('.quote').click();
  const originalRow = alice.page.locator(`#m-${original.id}`);
  await expect(originalRow).toHaveClass(/highlight/);
  await expect(originalRow).toBeInViewport();

  // Delete: Alice deletes the café message; both see the tombstone, and Bob's quote follows.
  alice.page.once('dialog', (d) => d.accept());
  await (await menu(alice.page, 'See you at the café')).getByRole('button', { name: 'Delete' }).click();
  for (const p of [alice, bob]) {
    await expect(tombstones(p.page)).toHaveText(['This message was deleted']);
    await expect(item(p.page, 'Perfect').locator('.quote')).toContainText('This message was deleted');
    await expect(item(p.page, 'See you at the café')).toHaveCount(0);
  }
  // The list preview follows the deletion of the last message.
  await sendApi(alice, bob, 'last words');
  await expect(item(bob.page, 'last words')).toBeVisible();
  alice.page.once('dialog', (d) => d.accept());
  await expect(item(alice.page, 'last words')).toBeVisible();
  await (await menu(alice.page, 'last words')).getByRole('button', { name: 'Delete' }).click();
  const row = bob.page.getByRole('complementary', { name: 'Contacts' }).getByRole('link', { name: new RegExp(alice.name) });
  await expect(row).toContainText('This message was deleted');

  // All of it is stored: a reload shows the same.
  await bob.page.reload();
  await expect(bob.page.locator('.message-scroller')).toHaveAttribute('data-interactive', 'true');
  await expect(tombstones(bob.page)).toHaveCount(2);
  await expect(item(bob.page, 'Perfect').locator('.quote')).toContainText('This message was deleted');
  await expect(item(bob.page, 'Noon works').locator('.quote')).toContainText('Where do we meet?');
  await expectAccessible(bob.page);
  await done(alice, bob);
});

test('an edit, a deletion and a reaction made while a tab is offline all show once it is back', { tag: '@js-only' }, async ({ browser }, info) => {
  const { alice, bob } = await pair(browser, info, 'act-off');
  const a = await sendApi(alice, bob, 'typo here');
  const b = await sendApi(alice, bob, 'regrettable');
  const c = await sendApi(alice, bob, 'nice one');
  await openChat(bob, info, alice);
  await live(bob);
  await expect(item(bob.page, 'nice one')).toBeVisible();

  await bob.context.setOffline(true);
  await expect(bob.page.getByRole('status').filter({ hasText: 'Offline' })).toBeVisible();
  const api = (endpoint: string, form: Record<string, string>) =>
    alice.context.request.post(endpoint, { form, headers: { accept: 'application/json' } });
  expect((await api('/api/messages/edit', { message_id: String(a.id), body: 'no typo here' })).ok()).toBeTruthy();
  expect((await api('/api/messages/delete', { message_id: String(b.id) })).ok()).toBeTruthy();
  expect((await api('/api/messages/react', { message_id: String(c.id), emoji: '🎉' })).ok()).toBeTruthy();

  await bob.context.setOffline(false);
  await expect(bob.page.getByRole('status').filter({ hasText: 'Back online' })).toBeVisible();
  await expect(item(bob.page, 'no typo here')).toContainText('(edited)');
  await expect(tombstones(bob.page)).toHaveCount(1);
  await expect(item(bob.page, 'regrettable')).toHaveCount(0);
  await expect(item(bob.page, 'nice one').locator('.reaction')).toContainText('🎉');
  await done(alice, bob);
});

test('the late answer to my reaction does not take away one that came live after it', { tag: '@js-only' }, async ({ browser }, info) => {
  const { alice, bob } = await pair(browser, info, 'act-late');
  const m = await sendApi(alice, bob, 'pizza tonight?');
  await openChat(bob, info, alice);
  await live(bob);
  // Bob's 👍 is stored at once, but the answer to his request is held back...
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let stored!: () => void;
  const reached = new Promise<void>((resolve) => (stored = resolve));
  await bob.page.route('**/api/messages/react', async (route) => {
    const response = await route.fetch();
    stored();
    await held;
    await route.fulfill({ response });
  });
  await (await menu(bob.page, 'pizza tonight?')).getByRole('button', { name: 'React with 👍' }).click();
  await reached;
  // ...while Alice's 🎉, a later change, comes live.
  const react = await alice.context.request.post('/api/messages/react', {
    form: { message_id: String(m.id), emoji: '🎉' },
    headers: { accept: 'application/json' },
  });
  expect(react.ok()).toBeTruthy();
  const chips = item(bob.page, 'pizza tonight?').locator('.reaction');
  await expect(chips).toHaveText([/👍\s*1/, /🎉\s*1/]);
  // The answer (Bob's 👍 alone) arrives last; once the page has had it, both reactions stay.
  const answered = bob.page.waitForEvent('requestfinished', (r) => r.url().endsWith('/api/messages/react'));
  release();
  await answered;
  await bob.page.evaluate(() => fetch('/healthz').then((r) => r.text()));
  await expect(chips).toHaveText([/👍\s*1/, /🎉\s*1/]);
  await expect(chips.filter({ hasText: '👍' })).toHaveAttribute('aria-pressed', 'true');
  await done(alice, bob);
});

test('Enter and Down pressed in the emoji search before the emoji table has arrived are acted on when it does', { tag: '@js-only' }, async ({ browser }, info) => {
  const { alice, bob } = await pair(browser, info, 'emojislow');
  await openChat(alice, info, bob);
  await live(alice);
  const box = alice.page.getByLabel('Message', { exact: true });
  // The table (a static file) is held back until the keys have been pressed, as on a slow network.
  let release!: () => void;
  const arrived = new Promise<void>((resolve) => (release = resolve));
  await alice.page.route('**/emoji.tsv', async (route) => {
    await arrived;
    await route.continue();
  });
  const open = async () => {
    await alice.page.getByRole('button', { name: 'Emoji' }).click();
    const picker = alice.page.getByRole('dialog', { name: /emoji/i });
    await expect(picker.getByRole('searchbox', { name: 'Search emoji' })).toBeFocused();
    return picker;
  };

  // Enter: the first match for what the box holds is picked once the table is there.
  let picker = await open();
  await expect(picker.getByRole('status').filter({ hasText: 'Loading' })).toBeVisible();
  await alice.page.keyboard.type('rocket');
  await alice.page.keyboard.press('Enter');
  await expect(picker).toBeVisible();
  release();
  await expect(picker).toHaveCount(0);
  await expect(box).toHaveValue(/🚀/);

  // Down (the table is kept for the page now, so it is held back on a new page): focus lands on
  // the first result once it is drawn, and Enter there picks it.
  await box.fill('');
  await alice.page.reload();
  await live(alice);
  let releaseAgain!: () => void;
  const arrivedAgain = new Promise<void>((resolve) => (releaseAgain = resolve));
  await alice.page.unroute('**/emoji.tsv');
  await alice.page.route('**/emoji.tsv', async (route) => {
    await arrivedAgain;
    await route.continue();
  });
  picker = await open();
  await alice.page.keyboard.type('tada');
  await alice.page.keyboard.press('ArrowDown');
  releaseAgain();
  await expect(picker.getByRole('button', { name: 'party popper', exact: true })).toBeFocused();
  await alice.page.keyboard.press('Enter');
  await expect(picker).toHaveCount(0);
  await expect(box).toHaveValue(/🎉/);
  await done(alice, bob);
});

test('the emoji picker and :shortcode: completion work by keyboard; emoji-only is large; markup is text', { tag: '@js-only' }, async ({ browser }, info) => {
  const { alice, bob } = await pair(browser, info, 'emoji');
  await openChat(alice, info, bob);
  await live(alice);
  const box = alice.page.getByLabel('Message', { exact: true });

  // The picker: open it, search by name, move with the arrows, pick with Enter.
  await alice.page.getByRole('button', { name: 'Emoji' }).click();
  const picker = alice.page.getByRole('dialog', { name: /emoji/i });
  await expect(picker).toBeVisible();
  // Focus moves to its search box once the picker's lazily loaded chunk has drawn it: a keyboard
  // user types there (a key pressed before that reached the button; seen as "ocket" under load).
  await expect(picker.getByRole('searchbox', { name: 'Search emoji' })).toBeFocused();
  await alice.page.keyboard.type('rocket');
  // The emoji table itself is a static file fetched when the picker first opens: arrows and Enter
  // act on the results once they are drawn.
  await expect(picker.getByRole('button', { name: 'rocket', exact: true })).toBeVisible();
  await alice.page.keyboard.press('ArrowDown');
  await alice.page.keyboard.press('Enter');
  await expect(picker).toHaveCount(0);
  await expect(box).toHaveValue(/🚀/);
  await expectAccessible(alice.page);

  // Completion: ":thu" offers 👍; Enter takes it.
  await box.fill('');
  await box.pressSequentially('great :thu');
  await expect(alice.page.getByRole('listbox')).toContainText('👍');
  await box.press('Enter');
  await expect(box).toHaveValue('great 👍');
  await box.press('Enter');
  await expect(item(alice.page, 'great 👍')).toBeVisible();

  // One to three emoji alone are shown large; with text they are not.
  await send(alice, '🎉🎉');
  await expect(item(alice.page, '🎉🎉').locator('.body')).toHaveClass(/emoji-only/);
  await expect(item(alice.page, 'great 👍').locator('.body')).not.toHaveClass(/emoji-only/);

  // Markup is shown as text; our own light formatting is drawn, safely.
  await send(alice, '<b>not bold</b> <img src=x onerror=alert(1)> *bold* _italic_ `code`');
  const formatted = log(alice.page).getByRole('listitem').last();
  await expect(formatted.locator('.body')).toContainText('<b>not bold</b> <img src=x onerror=alert(1)>');
  await expect(formatted.locator('.body b, .body img')).toHaveCount(0);
  await expect(formatted.locator('strong')).toHaveText('bold');
  await expect(formatted.locator('em')).toHaveText('italic');
  await expect(formatted.locator('code')).toHaveText('code');
  await done(alice, bob);
});

test('the actions menu is reachable by keyboard, Esc cancels a reply, and More reactions opens the full picker', { tag: '@js-only' }, async ({ browser }, info) => {
  const { alice, bob } = await pair(browser, info, 'act-kb');
  await sendApi(bob, alice, 'ping me back');
  await openChat(alice, info, bob);
  await live(alice);
  const message = item(alice.page, 'ping me back');
  const summary = message.getByLabel('Message actions');
  await summary.focus();
  await alice.page.keyboard.press('Enter');
  await expect(message.locator('.actions-menu')).toBeVisible();
  await expectAccessible(alice.page);
  // Tab moves through the menu; Esc closes it and gives focus back.
  await alice.page.keyboard.press('Tab');
  await expect(message.getByRole('button', { name: 'React with 👍' })).toBeFocused();
  await alice.page.keyboard.press('Escape');
  await expect(message.locator('.actions-menu')).toBeHidden();
  await expect(summary).toBeFocused();
  await alice.page.keyboard.press('Enter');
  await message.getByRole('button', { name: 'Reply' }).focus();
  await alice.page.keyboard.press('Enter');
  await expect(alice.page.locator('.replying')).toContainText('ping me back');
  await alice.page.keyboard.press('Escape');
  await expect(alice.page.locator('.replying')).toHaveCount(0);

  // "More reactions…" opens the full picker for the message: search, Enter picks; Esc closes.
  await summary.focus();
  await alice.page.keyboard.press('Enter');
  await message.getByRole('button', { name: 'More reactions…' }).click();
  const picker = alice.page.getByRole('dialog', { name: 'Choose a reaction' });
  await expect(picker).toBeVisible();
  await expectAccessible(alice.page);
  await alice.page.keyboard.press('Escape');
  await expect(picker).toHaveCount(0);
  await message.getByLabel('Message actions').click();
  await message.getByRole('button', { name: 'More reactions…' }).click();
  await alice.page.keyboard.type('tada');
  await alice.page.keyboard.press('Enter');
  await expect(picker).toHaveCount(0);
  await expect(message.locator('.reaction')).toContainText('🎉');
  await expect(message.locator('.reaction')).toHaveAttribute('aria-pressed', 'true');
  await done(alice, bob);
});

test('without JavaScript, edit, delete and quick reactions are plain forms', { tag: '@no-js-only' }, async ({ browser }, info) => {
  const { alice, bob } = await pair(browser, info, 'act-nojs');
  await openChat(alice, info, bob);
  for (const text of ['form typo', 'form delete me']) {
    await alice.page.getByLabel('Message', { exact: true }).fill(text);
    await alice.page.getByRole('button', { name: 'Send', exact: true }).click();
    await expect(item(alice.page, text)).toBeVisible();
  }

  // The "⋯" link opens the message's menu without JavaScript (the server draws it open);
  // "Edit" opens the form in place.
  await item(alice.page, 'form typo').getByLabel('Message actions').click();
  await expect(alice.page).toHaveURL(/\?actions=\d+/);
  // One menu, the one asked for.
  await expect(log(alice.page).locator('.actions-menu')).toHaveCount(1);
  await item(alice.page, 'form typo').getByRole('link', { name: 'Edit' }).click();
  await expect(alice.page).toHaveURL(/\?edit=\d+/);
  await alice.page.getByLabel('Edit message').fill('form, fixed');
  await alice.page.getByRole('button', { name: 'Save' }).click();
  await expect(alice.page).not.toHaveURL(/edit=/);
  await expect(item(alice.page, 'form, fixed')).toContainText('(edited)');

  await item(alice.page, 'form delete me').getByLabel('Message actions').click();
  await item(alice.page, 'form delete me').getByRole('button', { name: 'Delete' }).click();
  await expect(tombstones(alice.page)).toHaveCount(1);

  await item(alice.page, 'form, fixed').getByLabel('Message actions').click();
  await item(alice.page, 'form, fixed').getByRole('button', { name: 'React with 🙏' }).click();
  await expect(item(alice.page, 'form, fixed').locator('.reaction')).toContainText('🙏');
  // Bob's page, rendered by the server, shows it all.
  await openChat(bob, info, alice);
  await expect(item(bob.page, 'form, fixed')).toContainText('(edited)');
  await expect(tombstones(bob.page)).toHaveCount(1);
  await expect(item(bob.page, 'form, fixed').locator('.reaction')).toHaveAttribute('title', `${alice.name} reacted with 🙏`);
  await expectAccessible(bob.page);
  await done(alice, bob);
});

test('in a group: a reply, a reaction, an edit and a deletion reach the other member live', { tag: '@js-only' }, async ({ browser }, info) => {
  const { alice, bob } = await pair(browser, info, 'act-grp');
  const room = await createGroupByApi(alice, 'Actions', [bob]);
  for (const p of [alice, bob]) {
    await p.page.goto(`/chat/g/${room}`);
    await expect(p.page.locator('.message-scroller')).toHaveAttribute('data-interactive', 'true');
    await live(p);
  }
  await send(bob, 'who brings the map?');
  await expect(item(alice.page, 'who brings the map?')).toBeVisible();
  await (await menu(alice.page, 'who brings the map?')).getByRole('button', { name: 'Reply' }).click();
  await send(alice, 'I do');
  await expect(item(bob.page, 'I do').locator('.quote')).toContainText('who brings the map?');
  await (await menu(bob.page, 'I do')).getByRole('button', { name: 'React with 🙏' }).click();
  await expect(item(alice.page, 'I do').locator('.reaction')).toHaveAttribute('title', `${bob.name} reacted with 🙏`);
  await (await menu(bob.page, 'who brings the map?')).getByRole('link', { name: 'Edit' }).click();
  await bob.page.getByLabel('Edit message').fill('who brings the maps?');
  await bob.page.getByLabel('Edit message').press('Enter');
  await expect(item(alice.page, 'who brings the maps?')).toContainText('(edited)');
  await expect(item(alice.page, 'I do').locator('.quote')).toContainText('who brings the maps?');
  bob.page.once('dialog', (d) => d.accept());
  await (await menu(bob.page, 'who brings the maps?')).getByRole('button', { name: 'Delete' }).click();
  await expect(tombstones(alice.page)).toHaveCount(1);
  await expect(item(alice.page, 'I do').locator('.quote')).toContainText('This message was deleted');
  await alice.page.reload();
  await expect(tombstones(alice.page)).toHaveCount(1);
  await expect(item(alice.page, 'I do').locator('.reaction')).toContainText('🙏');
  await done(alice, bob);
});

test('screenshots: an edited message, a tombstone, a reply and reactions', { tag: '@js-only' }, async ({ browser }, info) => {
  const { alice, bob } = await pair(browser, info, 'act-shot');
  const plan = await sendApi(alice, bob, 'Plan for Saturday: *hike* at 9, then `lunch` at the hut 🥾');
  await sendApi(bob, alice, 'Count me in!', { reply_to_id: String(plan.id) });
  const gone = await sendApi(alice, bob, 'wrong chat, sorry');
  const edited = await sendApi(bob, alice, 'Bringing snaks');
  const api = (who: Person, endpoint: string, form: Record<string, string>) =>
    who.context.request.post(endpoint, { form, headers: { accept: 'application/json' } });
  await api(alice, '/api/messages/delete', { message_id: String(gone.id) });
  await api(bob, '/api/messages/edit', { message_id: String(edited.id), body: 'Bringing snacks 🍫' });
  await api(bob, '/api/messages/react', { message_id: String(plan.id), emoji: '👍' });
  await api(alice, '/api/messages/react', { message_id: String(plan.id), emoji: '👍' });
  await api(alice, '/api/messages/react', { message_id: String(edited.id), emoji: '😂' });
  await sendApi(alice, bob, '🎉');
  await openChat(alice, info, bob);
  for (const scheme of ['light', 'dark'] as const) {
    await alice.page.emulateMedia({ colorScheme: scheme });
    for (const [size, viewport] of [['desktop', { width: 1200, height: 760 }], ['mobile', { width: 390, height: 760 }]] as const) {
      await alice.page.setViewportSize(viewport);
      await expect(item(alice.page, 'Bringing snacks 🍫')).toBeVisible();
      await alice.page.screenshot({ path: shot(`actions-${scheme}-${size}.png`) });
    }
  }
  await done(alice, bob);
});
