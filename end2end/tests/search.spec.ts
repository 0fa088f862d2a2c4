// Message search, with JavaScript and without: from the box above the conversation list to a
// results page (words highlighted, 20 at a time, "More results"), and from a result into the
// conversation at that message, 50 messages back; search in one conversation; nobody finds
// another pair's messages; an axe audit and screenshots of the results.
import { expect, test } from '@playwright/test';
import * as path from 'node:path';
import { expectAccessible } from './a11y';
import { done, openChat, person, sendByApi } from './chat-support';

test.describe.configure({ mode: 'parallel' });

const shot = (name: string) => path.resolve(__dirname, '../screenshots', name);

test('search finds a message, highlights the words and opens the conversation at it', async ({ browser }, info) => {
  // 60 messages of history after the one searched for (the send limit makes that take ~15 s).
  test.setTimeout(120_000);
  const js = info.project.use.javaScriptEnabled !== false;
  const alice = await person(browser, info, 'find-a');
  const bob = await person(browser, info, 'find-b');
  const carol = await person(browser, info, 'find-c');
  const target = await sendByApi(bob, alice, 'Shall we deploy the staging build on Friday? Café at ten.');
  for (let i = 1; i <= 60; i++) await sendByApi(i % 2 ? alice : bob, i % 2 ? bob : alice, `filler note ${i}`);

  // From the box above the conversation list (without JavaScript, Enter asks the server).
  await openChat(alice, info);
  const box = alice.page.getByLabel('Search people');
  await box.fill('DEPLOY cafe');
  if (!js) await box.press('Enter');
  await alice.page.getByTestId('search-messages').click();
  await expect(alice.page).toHaveURL(/\/chat\/search\?q=DEPLOY\+cafe/);
  const hits = alice.page.getByTestId('search-hit');
  await expect(hits).toHaveCount(1);
  await expect(hits.first()).toContainText(bob.name);
  await expect(hits.first().locator('mark')).toHaveText(['deploy', 'Café']);
  await expectAccessible(alice.page, 'search results');
  await alice.page.screenshot({ path: shot(`search-results-${js ? 'js' : 'nojs'}.png`) });

  // The hit opens the conversation at the message, which is far older than the newest page.
  await hits.first().click();
  await expect(alice.page).toHaveURL(new RegExp(`/chat/${bob.id}\\?at=${target.id}`));
  const message = alice.page.locator(`#m-${target.id}`);
  await expect(message).toBeInViewport();
  await expect(message).toHaveClass(/highlight/);
  if (js) await expect(alice.page.locator('.message-scroller')).toHaveAttribute('data-interactive', 'true');
  await alice.page.screenshot({ path: shot(`search-opened-${js ? 'js' : 'nojs'}.png`) });

  // Twenty at a time: 60 notes match; "More results" brings the next twenty.
  await alice.page.goto('/chat/search?q=filler+note');
  await expect(hits).toHaveCount(20);
  await expect(alice.page.locator('.search-summary')).toHaveText('20 messages (more below)');
  await alice.page.getByRole('link', { name: 'More results' }).click();
  if (js) {
    await expect(hits).toHaveCount(40);
  } else {
    await expect(alice.page.locator('.search-summary')).toHaveText('Messages 21–40 (more below)');
    await expect(hits).toHaveCount(20);
  }

  // In one conversation: a quoted phrase matches words in a row only.
  await openChat(alice, info, bob);
  await alice.page.getByRole('link', { name: 'Search in this conversation' }).click();
  const query = alice.page.getByRole('searchbox', { name: 'Search messages' });
  await query.fill('"staging build"');
  await query.press('Enter');
  await expect(alice.page).toHaveURL(/in=u\d+/);
  await expect(hits).toHaveCount(1);
  await query.fill('"build staging"');
  await query.press('Enter');
  const pane = (page: typeof alice.page) => page.getByRole('main', { name: 'Search messages' });
  await expect(pane(alice.page).getByRole('status')).toHaveText('No messages match “"build staging"”.');

  // Carol is in neither conversation.
  await carol.page.goto('/chat/search?q=deploy');
  await expect(pane(carol.page).getByRole('status')).toHaveText('No messages match “deploy”.');
  await done(alice, bob, carol);
});
