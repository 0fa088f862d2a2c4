// Group chat with three people in three browser contexts: creating a group, live messages, "Seen
// by", two people typing, a live rename, a removal that stops delivery at once; and the same group
// made and used with plain forms when JavaScript is off.
import { expect, test, type Page } from '@playwright/test';
import * as path from 'node:path';
import { expectAccessible } from './a11y';
import { done, live, log, person, send, sendByApi, type Person } from './chat-support';
import { ready } from './helpers';

test.describe.configure({ mode: 'parallel' });

const item = (page: Page, text: string) =>
  log(page).getByRole('listitem').filter({ has: page.locator('.body').getByText(text, { exact: true }) });

/** Creates a group called `name` with `members` through the new-group page. Returns its id. */
async function createGroup(owner: Person, name: string, members: Person[], js: boolean): Promise<number> {
  await owner.page.goto('/chat/new-group');
  await ready(owner.page, test.info());
  for (const member of members) {
    const search = owner.page.getByRole('main').getByLabel('Search people');
    await search.fill(member.name);
    if (!js) {
      // Without JavaScript the search is a GET form: the page comes back with the people found,
      // and only what is ticked on the last search is sent (one person here).
      await owner.page.getByRole('button', { name: 'Search' }).click();
    }
    await owner.page.getByLabel(member.name, { exact: true }).check();
  }
  await owner.page.getByLabel('Group name').fill(name);
  await owner.page.getByRole('button', { name: 'Create group' }).click();
  await expect(owner.page).toHaveURL(/\/chat\/g\/\d+$/);
  return Number(owner.page.url().split('/').pop());
}

async function openGroup(p: Person, room: number) {
  await p.page.goto(`/chat/g/${room}`);
  await ready(p.page, test.info());
  if (test.info().project.use.javaScriptEnabled !== false) {
    await expect(p.page.locator('.message-scroller')).toHaveAttribute('data-interactive', 'true');
    await live(p);
    await expect(p.page.locator('.message-scroller')).toHaveAttribute('data-whispers', 'ready');
  }
}

test('three people talk in a group live: seen by, typing, rename, removal', { tag: '@js-only' }, async ({ browser }, info) => {
  // Three browsers and many steps: more than the default 30 s on a loaded two-core machine.
  test.setTimeout(120_000);
  const ann = await person(browser, info, 'grp-a');
  const ben = await person(browser, info, 'grp-b');
  const cat = await person(browser, info, 'grp-c');
  const room = await createGroup(ann, 'Weekend trip', [ben, cat], true);

  // The group is in everyone's one conversation list, with the line about its creation.
  await ben.page.goto('/chat');
  await ready(ben.page, info);
  const row = ben.page.getByRole('complementary', { name: 'Contacts' }).getByRole('link', { name: /Weekend trip/ });
  await expect(row).toContainText('created the group');

  for (const p of [ann, ben, cat]) await openGroup(p, room);
  await expect(ann.page.locator('.conversation-header')).toContainText('3 members');
  await expectAccessible(ann.page, 'group conversation');

  await send(ann, 'Who brings the tent?');
  for (const p of [ben, cat]) await expect(item(p.page, 'Who brings the tent?')).toBeVisible();
  // Both have it open and visible: Ann sees it read by both.
  await expect(item(ann.page, 'Who brings the tent?').locator('.seen-by')).toHaveText('Seen by 2');

  // Ben and Cat type at once.
  await ben.page.getByLabel('Message', { exact: true }).pressSequentially('I can', { delay: 30 });
  await cat.page.getByLabel('Message', { exact: true }).pressSequentially('Me too', { delay: 30 });
  await expect(ann.page.locator('.typing')).toHaveText(/^(.+) and (.+) are typing…$/);
  await expect(ann.page.locator('.typing')).toContainText(ben.name);
  await expect(ann.page.locator('.typing')).toContainText(cat.name);

  await send(ben, 'I can');
  await expect(item(ann.page, 'I can')).toContainText(ben.name);

  // A rename shows live in the other members' headers.
  const panel = ann.page.getByTestId('member-panel');
  await panel.locator('summary').click();
  await expect(panel.locator('.member')).toHaveCount(3);
  await expect(panel.locator('.member', { hasText: ann.name })).toContainText('admin');
  await panel.getByLabel('Group name').fill('Camping trip');
  await panel.getByRole('button', { name: 'Rename' }).click();
  await expect(ben.page.locator('.conversation-header .peer-name')).toHaveText('Camping trip');
  await expect(item(cat.page, `${ann.name} renamed the group to “Camping trip”`)).toBeVisible();

  // Cat is removed: she is told at once, and what is said next never reaches her.
  await openGroup(ann, room);
  const panelAgain = ann.page.getByTestId('member-panel');
  await panelAgain.locator('summary').click();
  await panelAgain.getByRole('button', { name: `Remove ${cat.name}` }).click();
  await expect(cat.page.locator('.no-longer-member')).toHaveText('You are no longer a member of this group.');
  await expect(item(cat.page, `${ann.name} removed ${cat.name}`)).toBeVisible();
  await openGroup(ann, room);
  await send(ann, 'Cat cannot read this');
  await expect(item(ben.page, 'Cat cannot read this')).toBeVisible();
  // A direct message published after it reaches Cat's open tab live: the group's message, published
  // first on the same connection, would have arrived before it if she still received the group.
  await sendByApi(ann, cat, 'published after the group message');
  await expect(cat.page.getByRole('complementary', { name: 'Contacts' })).toContainText('published after the group message');
  await expect(item(cat.page, 'Cat cannot read this')).toHaveCount(0);
  // After a reload she still reads what she saw, read-only.
  await cat.page.reload();
  await ready(cat.page, info);
  await expect(item(cat.page, 'Who brings the tent?')).toBeVisible();
  await expect(item(cat.page, 'Cat cannot read this')).toHaveCount(0);
  await expect(cat.page.getByLabel('Message', { exact: true })).toHaveCount(0);
  await expectAccessible(cat.page, 'a group after removal');

  // Screenshots of a group conversation, light and dark, desktop and mobile.
  await ben.page.reload();
  await ready(ben.page, info);
  const dir = path.resolve(__dirname, '../screenshots');
  for (const scheme of ['light', 'dark'] as const) {
    await ben.page.emulateMedia({ colorScheme: scheme });
    for (const [device, size] of [['desktop', { width: 1280, height: 800 }], ['mobile', { width: 390, height: 800 }]] as const) {
      await ben.page.setViewportSize(size);
      const file = path.join(dir, `group-${scheme}-${device}.png`);
      await ben.page.screenshot({ path: file });
      await info.attach(`group-${scheme}-${device}`, { path: file, contentType: 'image/png' });
    }
  }
  await done(ann, ben, cat);
});

test('without JavaScript a group is created and used with plain forms', { tag: '@no-js-only' }, async ({ browser }, info) => {
  const ann = await person(browser, info, 'grpnj-a');
  const ben = await person(browser, info, 'grpnj-b');
  const room = await createGroup(ann, 'Plain forms', [ben], false);
  await expect(ann.page.locator('.conversation-header .peer-name')).toHaveText('Plain forms');
  await expectAccessible(ann.page, 'group conversation without JavaScript');
  await ann.page.getByLabel('Message', { exact: true }).fill('Hello from a form');
  await ann.page.getByRole('button', { name: 'Send', exact: true }).click();
  await expect(ann.page).toHaveURL(new RegExp(`/chat/g/${room}\\??$`));
  await expect(item(ann.page, 'Hello from a form')).toBeVisible();
  await ben.page.goto(`/chat/g/${room}`);
  await expect(item(ben.page, 'Hello from a form')).toBeVisible();
  await expect(ben.page.locator('.conversation-header')).toContainText('2 members');
  // A name that is too long is refused with a clear message, and nothing is created.
  await ann.page.goto('/chat/new-group');
  await ann.page.getByLabel('Group name').fill('x'.repeat(80));
  await ann.page.getByRole('button', { name: 'Create group' }).click();
  await expect(ann.page.getByRole('alert').filter({ hasText: 'add at least one person' })).toBeVisible();
  await done(ann, ben);
});
