// Notifications: asked for only when the person clicks "Enable notifications"; shown for a
// message that arrives while the tab is hidden or another conversation is open, never for the
// conversation in front of you or a muted one; a click opens its conversation. The mute is kept
// on the server. The favicon carries the unread count.
import { expect, test, type Page } from '@playwright/test';
import { expectAccessible } from './a11y';
import { done, live, openChat, person, sendByApi } from './chat-support';

type Note = { title: string; body: string };

/** Records every notification the page makes (and still makes it), and lets the test hide the tab. */
function watchNotifications() {
  const w = window as unknown as Record<string, unknown>;
  const notes: { title: string; body?: string; note: Notification }[] = [];
  w.__notes = notes;
  const Real = window.Notification;
  class Recorded extends Real {
    constructor(title: string, options?: NotificationOptions) {
      super(title, options);
      notes.push({ title, body: options?.body, note: this });
    }
  }
  Object.defineProperty(Recorded, 'permission', { get: () => Real.permission });
  Object.defineProperty(Recorded, 'requestPermission', { value: (...args: []) => Real.requestPermission(...args) });
  w.Notification = Recorded;
  let hidden = false;
  w.__setHidden = (value: boolean) => {
    hidden = value;
    document.dispatchEvent(new Event('visibilitychange'));
  };
  Object.defineProperty(document, 'visibilityState', { get: () => (hidden ? 'hidden' : 'visible'), configurable: true });
  Object.defineProperty(document, 'hidden', { get: () => hidden, configurable: true });
}

const notes = (page: Page): Promise<Note[]> =>
  page.evaluate(() => ((window as unknown as { __notes: { title: string; body: string }[] }).__notes ?? []).map(({ title, body }) => ({ title, body })));

test('a message out of sight notifies unless muted, and the notification opens its conversation', { tag: '@js-only' }, async ({ browser }, info) => {
  test.setTimeout(90_000);
  const alice = await person(browser, info, 'note-a');
  const bob = await person(browser, info, 'note-b');
  const carol = await person(browser, info, 'note-c');
  await alice.context.grantPermissions(['notifications']);
  await alice.context.addInitScript(watchNotifications);
  await sendByApi(bob, alice, 'hello');
  await sendByApi(carol, alice, 'hey');

  // Nothing is asked for on page load; the person turns them on.
  await openChat(alice, info);
  await live(alice);
  const enable = alice.page.getByRole('button', { name: 'Enable notifications' });
  await expect(enable).toBeVisible();
  await enable.click();
  await expect(alice.page.getByRole('button', { name: '🔔 Notifications on' })).toHaveAttribute('aria-pressed', 'true');
  await expectAccessible(alice.page, 'notification switch');

  // No conversation open: Bob's message notifies, with his name and the first line.
  await sendByApi(bob, alice, 'Lunch at noon?\nThe usual place');
  await expect.poll(() => notes(alice.page)).toEqual([{ title: bob.name, body: 'Lunch at noon?' }]);

  // Bob's conversation in front of Alice: nothing; the same tab hidden: a notification.
  await openChat(alice, info, bob);
  await live(alice);
  await sendByApi(bob, alice, 'seen in place');
  await expect(alice.page.getByRole('log').getByText('seen in place')).toBeVisible();
  await alice.page.evaluate(() => (window as unknown as { __setHidden: (h: boolean) => void }).__setHidden(true));
  await sendByApi(bob, alice, 'while hidden');
  await expect.poll(async () => (await notes(alice.page)).map((n) => n.body)).toEqual(['while hidden']);
  await alice.page.evaluate(() => (window as unknown as { __setHidden: (h: boolean) => void }).__setHidden(false));

  // Muted (kept on the server): no notification from Bob; Carol's still notifies.
  const mute = alice.page.getByRole('button', { name: 'Mute' });
  await mute.click();
  await expect(alice.page.getByRole('button', { name: '🔕 Muted' })).toHaveAttribute('aria-pressed', 'true');
  await openChat(alice, info);
  await live(alice);
  await expect(alice.page.getByRole('complementary', { name: 'Contacts' }).getByRole('img', { name: 'muted' })).toHaveCount(1);
  await sendByApi(bob, alice, 'muted message');
  await sendByApi(carol, alice, 'from carol');
  await expect.poll(async () => (await notes(alice.page)).map((n) => n.body)).toEqual(['from carol']);

  // The notification opens Carol's conversation.
  await alice.page.evaluate(() => {
    const recorded = (window as unknown as { __notes: { note: Notification }[] }).__notes;
    const click = recorded[recorded.length - 1].note.onclick as unknown as () => void;
    click();
  });
  await expect(alice.page).toHaveURL(new RegExp(`/chat/${carol.id}$`));

  // The favicon shows the unread count; the mute follows Alice to a fresh page.
  const icon = await alice.page.locator('link[rel="icon"]').last().getAttribute('href');
  expect(icon).toMatch(/^data:image\/svg\+xml,/);
  await openChat(alice, info, bob);
  await expect(alice.page.getByRole('button', { name: '🔕 Muted' })).toBeVisible();
  await done(alice, bob, carol);
});

test('without JavaScript a conversation is muted and unmuted with a plain form', { tag: '@no-js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'mute-a');
  const bob = await person(browser, info, 'mute-b');
  await sendByApi(bob, alice, 'hello');
  await openChat(alice, info, bob);
  await alice.page.getByRole('button', { name: 'Mute' }).click();
  await expect(alice.page).toHaveURL(new RegExp(`/chat/${bob.id}$`));
  await expect(alice.page.getByRole('button', { name: '🔕 Muted' })).toBeVisible();
  await alice.page.getByRole('button', { name: '🔕 Muted' }).click();
  await expect(alice.page.getByRole('button', { name: 'Mute', exact: true })).toBeVisible();
  await done(alice, bob);
});
