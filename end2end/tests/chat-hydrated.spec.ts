// The chat once hydrated: the composer (and typing and sending before the app has loaded), the
// unread/read flow, history paging, links, theme and Esc, retry after a refused send, the offline
// outbox, and screenshots. Each page is checked for hydration panics.
import { expect, test, type Browser, type Page, type TestInfo } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { expectAccessible } from './a11y';
import { chunkLine, contactRow, done, live, log, openChat, person, send, sendByApi } from './chat-support';
import { newAccount, ready } from './helpers';

test('alice writes to bob; bob sees it unread, reads it; alice sees it read', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'alice');
  const bob = await person(browser, info, 'bob');

  await openChat(alice, info, bob);
  // The app's WASM came compressed (Chromium asks for gzip over plain http, brotli over https):
  // fewer than half its bytes went over the wire.
  const wasm = await alice.page.evaluate(() => {
    const entry = performance.getEntriesByType('resource').find((e) => e.name.endsWith('.wasm')) as PerformanceResourceTiming;
    return { encoded: entry.encodedBodySize, decoded: entry.decodedBodySize };
  });
  expect(wasm.decoded).toBeGreaterThan(500_000);
  expect(wasm.encoded).toBeLessThan(wasm.decoded / 2);
  await expect(alice.page.getByLabel('Message', { exact: true })).toBeFocused();
  await send(alice, 'Hello Bob!\nHow are you?');
  const sent = log(alice.page).getByRole('listitem').filter({ hasText: 'Hello Bob!' });
  await expect(sent.getByLabel('Sent')).toBeVisible();
  await expect(alice.page.getByLabel('Message', { exact: true })).toHaveValue('');

  await openChat(bob, info);
  const row = contactRow(bob.page, alice.name);
  await expect(row.getByLabel('1 unread')).toBeVisible();
  await expect(row).toContainText('Hello Bob! How are you?');
  await expect(bob.page).toHaveTitle('(1) Banter');

  await row.click();
  await expect(log(bob.page)).toContainText('Hello Bob!\nHow are you?');
  await expect(row.getByLabel('1 unread')).toHaveCount(0);
  await expect(bob.page).toHaveTitle('Banter');

  await openChat(alice, info, bob);
  await expect(log(alice.page).getByRole('listitem').filter({ hasText: 'Hello Bob!' }).getByLabel('Read')).toBeVisible();
  await alice.context.close();
  await bob.context.close();
});

/** Alice and Bob, and Alice's page open on their conversation with the app's WASM held back until
 * `release()`: the page is the server's HTML alone, as on a slow network for the seconds the WASM
 * takes to arrive. The composer has the focus from the first paint: one just types. */
async function openWithTheAppHeld(browser: Browser, info: TestInfo) {
  const alice = await person(browser, info, 'alice');
  const bob = await person(browser, info, 'bob');
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  await alice.page.route(/\/pkg\/banter\.[A-Za-z0-9_-]+\.wasm$/, async (route) => {
    await held;
    await route.continue();
  });
  await alice.page.goto(`/chat/${bob.id}`);
  const box = alice.page.getByLabel('Message', { exact: true });
  await expect(box).toBeFocused();
  return { alice, bob, box, release };
}

test('what is typed before the app has loaded stays in the composer, and Enter then sends it', { tag: '@js-only' }, async ({ browser }, info) => {
  const { alice, bob, box, release } = await openWithTheAppHeld(browser, info);
  // Shift+Enter: a new line.
  await alice.page.keyboard.type('Typed before the app woke up');
  await alice.page.keyboard.press('Shift+Enter');
  await alice.page.keyboard.type('and a second line');
  const text = 'Typed before the app woke up\nand a second line';
  await expect(box).toHaveValue(text);
  await expect(alice.page.locator('body')).not.toHaveAttribute('data-hydrated', 'true');

  release();
  await ready(alice.page, info);
  await expect(alice.page.locator('.message-scroller')).toHaveAttribute('data-interactive', 'true');
  // Hydration kept it (and the app knows it: Send is on, Enter sends).
  await expect(box).toHaveValue(text);
  await expect(alice.page.getByRole('button', { name: 'Send' })).toBeEnabled();
  await box.press('Enter');
  await expect(log(alice.page).getByRole('listitem').filter({ hasText: 'Typed before' }).getByLabel('Sent')).toBeVisible();
  await expect(box).toHaveValue('');

  await openChat(bob, info, alice);
  await expect(log(bob.page)).toContainText(text);
  // Sent, so not kept as a draft either.
  await openChat(alice, info, bob);
  await expect(box).toHaveValue('');
  await done(alice, bob);
});

test('Enter before the app has loaded sends the message as the Send button would', { tag: '@js-only' }, async ({ browser }, info) => {
  const { alice, bob, box, release } = await openWithTheAppHeld(browser, info);
  // Blank: Enter does nothing (no empty post, no new line).
  await alice.page.keyboard.press('Enter');
  await expect(box).toHaveValue('');
  await alice.page.keyboard.type('Sent before the app woke up');
  await alice.page.keyboard.press('Enter');
  // The plain form went: the server's next page shows the message, the composer empty again.
  await expect(log(alice.page)).toContainText('Sent before the app woke up');
  await expect(box).toHaveValue('');
  await expect(alice.page.locator('body')).not.toHaveAttribute('data-hydrated', 'true');

  release();
  await openChat(bob, info, alice);
  await expect(log(bob.page).getByRole('listitem').filter({ hasText: 'Sent before the app woke up' })).toHaveCount(1);
  // Once the app runs, Enter is its own again: the app sends, in place (no page load), once.
  await ready(alice.page, info);
  await expect(alice.page.locator('.message-scroller')).toHaveAttribute('data-interactive', 'true');
  await alice.page.evaluate(() => ((window as unknown as { stayed: boolean }).stayed = true));
  await send(alice, 'And one after');
  await expect(log(bob.page).getByRole('listitem').filter({ hasText: 'And one after' })).toHaveCount(1);
  await expect(log(alice.page).getByRole('listitem').filter({ hasText: 'And one after' })).toHaveCount(1);
  expect(await alice.page.evaluate(() => (window as unknown as { stayed?: boolean }).stayed)).toBe(true);
  await done(alice, bob);
});

test('the bundle: named by content, compressed, immutable; a second visit fetches none of it again', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'alice');
  const bob = await person(browser, info, 'bob');
  const bundle: { path: string; cache: string; encoding: string }[] = [];
  alice.page.on('response', (r) => {
    const path = new URL(r.url()).pathname;
    if (path.startsWith('/pkg/')) bundle.push({ path, cache: r.headers()['cache-control'] ?? '', encoding: r.headers()['content-encoding'] ?? '' });
  });
  await openChat(alice, info, bob);
  const first = [...bundle];
  // The app's stylesheet, script and WASM, and the split build's chunk loader; no lazy chunk.
  expect(first.map((b) => b.path.replace(/\.[A-Za-z0-9_-]{22}\./, '.')).sort()).toEqual([
    '/pkg/__wasm_split.js',
    '/pkg/banter.css',
    '/pkg/banter.js',
    '/pkg/banter.wasm',
  ]);
  for (const b of first) {
    // cargo-leptos' names: the output name, then the file's MD5 in URL-safe base64 (22 characters).
    expect(b.path).toMatch(/^\/pkg\/(banter|__wasm_split)\.[A-Za-z0-9_-]{22}\.(css|js|wasm)$/);
    expect(b.cache, b.path).toBe('public, max-age=31536000, immutable');
    expect(['br', 'gzip'], b.path).toContain(b.encoding);
  }

  // A later visit in the same browser: every bundle file comes from its cache (no bytes moved,
  // not even a revalidation).
  await openChat(alice, info, bob);
  const second = await alice.page.evaluate(() =>
    performance
      .getEntriesByType('resource')
      .map((e) => e as PerformanceResourceTiming)
      .filter((e) => new URL(e.name).pathname.startsWith('/pkg/'))
      .map((e) => ({ path: new URL(e.name).pathname, transferred: e.transferSize, size: e.decodedBodySize })),
  );
  expect(second.map((e) => e.path).sort()).toEqual(first.map((b) => b.path).sort());
  for (const e of second) {
    expect(e.size, e.path).toBeGreaterThan(0);
    expect(e.transferred, `${e.path} came over the network`).toBe(0);
  }
  await done(alice, bob);
});

test('lazily loaded pieces: a conversation loads one WASM module; the emoji picker, search and the new-group form each fetch their own chunk when first used', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'alice');
  const bob = await person(browser, info, 'bob');
  const wasm: { path: string; cache: string }[] = [];
  alice.page.on('response', (r) => {
    const path = new URL(r.url()).pathname;
    if (path.startsWith('/pkg/') && path.endsWith('.wasm')) wasm.push({ path, cache: r.headers()['cache-control'] ?? '' });
  });
  await openChat(alice, info, bob);
  expect(wasm.map((w) => w.path)).toEqual([expect.stringMatching(/^\/pkg\/banter\.[A-Za-z0-9_-]{22}\.wasm$/)]);

  // Each piece, used for the first time, brings at least one chunk the page did not have, and works.
  const fetchedFor = async (piece: string, use: () => Promise<void>) => {
    const before = wasm.length;
    await use();
    await expect.poll(() => wasm.length, `${piece} fetched its chunk`).toBeGreaterThan(before);
  };
  await fetchedFor('the emoji picker', async () => {
    // A pointer over the button starts fetching it, before the click.
    await alice.page.getByRole('button', { name: 'Emoji' }).hover();
    await expect.poll(() => wasm.some((w) => w.path.startsWith('/pkg/split_emoji_picker.')), 'hovering fetched the picker').toBe(true);
    await alice.page.getByRole('button', { name: 'Emoji' }).click();
    await expect(alice.page.getByRole('dialog', { name: 'Choose an emoji' }).getByRole('button', { name: /grinning/i }).first()).toBeVisible();
    await alice.page.keyboard.press('Escape');
    await expect(alice.page.getByRole('dialog', { name: 'Choose an emoji' })).toHaveCount(0);
  });
  await fetchedFor('search', async () => {
    await alice.page.getByLabel('Search people').fill('nothing like this');
    await alice.page.getByTestId('search-messages').click();
    await expect(alice.page).toHaveURL(/\/chat\/search\?q=nothing/);
    await expect(alice.page.getByRole('main')).toContainText('No messages');
  });
  await fetchedFor('the new-group form', async () => {
    await alice.page.getByTestId('new-group').click();
    await expect(alice.page.getByLabel('Group name')).toBeVisible();
  });
  // Every chunk is named by its content and kept by the browser; none was fetched twice.
  for (const w of wasm) {
    expect(w.path).toMatch(/\.[A-Za-z0-9_-]{22}\.wasm$/);
    expect(w.cache, w.path).toBe('public, max-age=31536000, immutable');
  }
  expect(new Set(wasm.map((w) => w.path)).size).toBe(wasm.length);
  await done(alice, bob);
});

test('a page that opens on search, the new-group form, sign-in or registration brings that piece\'s chunk with it, on every load', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'alice');
  // Sign-in and registration are seen signed out.
  const visitor = await browser.newPage({ baseURL: info.project.use.baseURL });
  const pkg = (page: Page, selector: string) =>
    page.evaluate((s) => [...document.head.querySelectorAll<HTMLLinkElement>(s)].map((l) => new URL(l.href).pathname), selector);
  const pages: [Page, string, () => Promise<void>][] = [
    [alice.page, '/chat/search?q=nothing+like+this', () => expect(alice.page.getByRole('main')).toContainText('No messages')],
    [alice.page, '/chat/new-group', () => expect(alice.page.getByLabel('Group name')).toBeVisible()],
    [visitor, '/login', () => expect(visitor.getByRole('button', { name: 'Sign in' })).toBeEnabled()],
    [visitor, '/register', () => expect(visitor.getByRole('button', { name: 'Create account' })).toBeEnabled()],
  ];
  const chunksOf: Record<string, string[]> = {};
  for (const [page, at, works] of pages) {
    // Leptos' own preload came with only some loads; this one is in the head every time.
    for (let load = 0; load < 4; load++) {
      await page.goto(at);
      await ready(page, info);
      await works();
      const chunks = (await pkg(page, 'link[rel=preload][as=fetch]')).filter((p) => !/^\/pkg\/banter\./.test(p));
      expect(chunks.length, `${at}, load ${load + 1}: a chunk preloaded`).toBeGreaterThan(0);
      for (const chunk of chunks) expect(chunk).toMatch(/^\/pkg\/[A-Za-z0-9_]+\.[A-Za-z0-9_-]{22}\.wasm$/);
      expect(await pkg(page, 'link[rel=modulepreload]'), `${at}: the chunk loader preloaded`).toContainEqual(
        expect.stringMatching(/^\/pkg\/__wasm_split\.[A-Za-z0-9_-]{22}\.js$/),
      );
      // What was preloaded is what the piece ran on: each chunk fetched once, none besides.
      const fetched = await page.evaluate(() =>
        performance
          .getEntriesByType('resource')
          .map((e) => new URL(e.name).pathname)
          .filter((p) => p.endsWith('.wasm') && !p.startsWith('/pkg/banter.')),
      );
      expect(fetched.sort(), at).toEqual([...chunks].sort());
      chunksOf[at] = chunks;
    }
  }
  // Each piece has chunks of its own, and a conversation's page preloads none.
  const sets = Object.values(chunksOf).map((c) => [...c].sort().join(' '));
  expect(new Set(sets).size, JSON.stringify(chunksOf)).toBe(pages.length);
  await openChat(alice, info);
  expect((await pkg(alice.page, 'link[rel=preload][as=fetch]')).filter((p) => !/^\/pkg\/banter\./.test(p))).toEqual([]);
  await visitor.close();
  await done(alice);
});

test('when the chunk of search or of the new-group form cannot be fetched, its page says so and Retry brings it; the rest keeps working', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'route-a');
  const bob = await person(browser, info, 'route-b');
  await sendByApi(bob, alice, 'are you there?');
  // Alice is offline as far as those two pages' chunks go.
  const line = await chunkLine(alice, /\/pkg\/split_(search_route|new_group_route)[._]/);
  await openChat(alice, info, bob);
  await openChat(bob, info, alice);
  await live(alice);
  await live(bob);

  const findPeople = alice.page.getByRole('complementary', { name: 'Contacts' }).getByLabel('Search people');
  await findPeople.fill('are you');
  await alice.page.getByTestId('search-messages').click();
  await expect(alice.page).toHaveURL(/\/chat\/search\?q=are/);
  const failed = alice.page.getByRole('main').getByRole('alert').filter({ hasText: 'could not reach Banter: search did not load' });
  await expect(failed).toBeVisible();
  await expectAccessible(alice.page, 'search-failed');
  await alice.page.screenshot({ path: path.resolve(__dirname, '../screenshots', 'lazy-route-failed.png') });
  // The app did not stop: the conversation opens again and a message goes out, live.
  await findPeople.fill('');
  await contactRow(alice.page, bob.name).click();
  await expect(alice.page).toHaveURL(new RegExp(`/chat/${bob.id}$`));
  await send(alice, 'search broke, the chat did not');
  await expect(log(bob.page).getByText('search broke, the chat did not')).toBeVisible();

  // The new-group form the same way. Back online, on a slow line: Retry shows that it is on its
  // way, then the form.
  await alice.page.getByTestId('new-group').click();
  const groupFailed = alice.page.getByRole('alert').filter({ hasText: 'could not reach Banter: the new group form did not load' });
  await expect(groupFailed).toBeVisible();
  // Beside the contact list the alert needs no way back; on a phone it fills the screen and has one.
  const back = alice.page.getByRole('main').getByRole('link', { name: '‹ Back' });
  await expect(back).toBeHidden();
  const desktop = alice.page.viewportSize();
  await alice.page.setViewportSize({ width: 390, height: 780 });
  await expect(back).toBeVisible();
  await expectAccessible(alice.page, 'new-group-failed-phone');
  await alice.page.screenshot({ path: path.resolve(__dirname, '../screenshots', 'lazy-route-failed-phone.png') });
  await back.click();
  await expect(alice.page).toHaveURL(/\/chat$/);
  await expect(contactRow(alice.page, bob.name)).toBeVisible();
  await alice.page.getByTestId('new-group').click();
  await expect(groupFailed).toBeVisible();
  if (desktop) await alice.page.setViewportSize(desktop);
  line.reachable = true;
  line.slow = 1500;
  await groupFailed.getByRole('link', { name: 'Retry' }).click();
  await expect(alice.page.getByRole('status').filter({ hasText: 'Opening the new group form…' })).toBeVisible();
  await expect(alice.page.getByLabel('Group name')).toBeVisible();
  await expect(groupFailed).toHaveCount(0);
  // Search opens as usual now.
  line.slow = 0;
  await findPeople.fill('are you');
  await alice.page.getByTestId('search-messages').click();
  await expect(alice.page.getByRole('main')).toContainText('are you there?');
  // The split build's loader reports each refused fetch as an unhandled "Failed to fetch"; that is
  // all the page may report (a panic would add "unreachable").
  expect(alice.errors.filter((e) => e !== 'Failed to fetch')).toEqual([]);
  alice.errors.length = 0;
  await done(alice, bob);
});

test('a page opened before Banter was updated says so when a chunk of its build is gone, and Reload brings the new version', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'update-a');
  const bob = await person(browser, info, 'update-b');
  await sendByApi(bob, alice, 'before the update');
  await openChat(alice, info, bob);
  await live(alice);
  // A new version is deployed: the server no longer has this page's build, its WASM module and
  // search's chunk among it (a 404 each, as for any file that is not there).
  let updated = true;
  await alice.page.route(/\/pkg\/(split_search_route|banter)[._][^/]*\.wasm/, (route) => {
    const moduleAsked = /\/banter[._]/.test(route.request().url()) && route.request().method() === 'HEAD';
    const gone = updated && (moduleAsked || /split_search_route/.test(route.request().url()));
    return gone ? route.fulfill({ status: 404, body: 'not found' }) : route.continue();
  });
  await alice.page.evaluate(() => ((window as unknown as { beforeReload: boolean }).beforeReload = true));

  const findPeople = alice.page.getByRole('complementary', { name: 'Contacts' }).getByLabel('Search people');
  await findPeople.fill('before the');
  await alice.page.getByTestId('search-messages').click();
  const stale = alice.page.getByRole('main').getByRole('alert');
  await expect(stale).toContainText('Banter has been updated since this page was opened: reload it to open search');
  await expect(stale).not.toContainText('could not reach Banter');
  await expectAccessible(alice.page, 'search-updated');
  await alice.page.screenshot({ path: path.resolve(__dirname, '../screenshots', 'lazy-build-replaced.png') });

  // The page now loads the new version, which has its chunks: Reload, into search.
  updated = false;
  await stale.getByRole('link', { name: 'Reload' }).click();
  await expect.poll(() => alice.page.evaluate(() => (window as unknown as { beforeReload?: boolean }).beforeReload ?? false)).toBe(false);
  await expect(alice.page).toHaveURL(/\/chat\/search\?q=before/);
  await ready(alice.page, info);
  await expect(alice.page.getByRole('main')).toContainText('before the update');
  // No page error (a panic would be one): a 404 is an answer, not a failed fetch.
  await done(alice, bob);
});

test('a page opened on a lazy route whose chunk does not arrive works as the server drew it, and the app takes over once the chunk comes', { tag: '@js-only' }, async ({ browser }, info) => {
  const account = newAccount('late');
  const signup = await browser.newContext({ baseURL: info.project.use.baseURL });
  const registered = await signup.request.post('/api/auth/register', {
    form: { name: account.name, email: account.email, password: account.password, password_confirmation: account.password },
    headers: { accept: 'application/json' },
  });
  expect(registered.ok(), await registered.text()).toBeTruthy();
  await signup.close();

  const visitor = await browser.newPage({ baseURL: info.project.use.baseURL });
  const errors: string[] = [];
  visitor.on('pageerror', (e) => errors.push(e.message));
  let reachable = false;
  let refused = 0;
  await visitor.route(/\/pkg\/split_login_route[._]/, (route) => {
    if (reachable) return route.continue();
    refused += 1;
    return route.abort('internetdisconnected');
  });
  await visitor.goto('/login');
  // The preload, the loader's fetch, then at least one more try after a wait: it does not give up.
  await expect.poll(() => refused, { timeout: 15_000 }).toBeGreaterThan(2);
  await expect(visitor.getByRole('button', { name: 'Sign in' })).toBeVisible();
  await expect(visitor.locator('body')).not.toHaveAttribute('data-hydrated', 'true');
  // Meanwhile the page says so, at its foot, as a status (not an alert: the form works as it is).
  const waiting = visitor.getByRole('status').filter({ hasText: 'Could not reach Banter' });
  await expect(waiting).toHaveText('Could not reach Banter: the sign-in form did not load yet. Trying again…');
  // The region holds a box that places itself at the page's foot.
  await expect(waiting.locator('.page-notice')).toBeInViewport();
  await expectAccessible(visitor, 'login-chunk-waiting');
  await visitor.screenshot({ path: path.resolve(__dirname, '../screenshots', 'lazy-startup-waiting.png') });
  reachable = true;
  await expect(visitor.locator('body')).toHaveAttribute('data-hydrated', 'true', { timeout: 20_000 });
  await expect(waiting).toHaveCount(0);
  // The page the app took over is the sign-in form, and it signs in.
  await visitor.getByLabel('Email').fill(account.email);
  await visitor.getByLabel('Password').fill(account.password);
  await visitor.getByRole('button', { name: 'Sign in' }).click();
  await expect(visitor).toHaveURL(/\/chat$/);
  await expect(visitor.getByRole('complementary', { name: 'Contacts' })).toBeVisible();
  expect(errors.filter((e) => e !== 'Failed to fetch')).toEqual([]);
  await visitor.close();
});

test('a page opened on a lazy route after its build was replaced says so, stops trying, and Reload brings the new version', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'stale-a');
  const bob = await person(browser, info, 'stale-b');
  await sendByApi(bob, alice, 'drawn by the server');
  // A new version is deployed between the page and its chunk: search's chunk and the page's WASM
  // module are gone (404), so no attempt can bring the chunk.
  let updated = true;
  let chunkAsked = 0;
  await alice.page.route(/\/pkg\/(split_search_route|banter)[._][^/]*\.wasm/, (route) => {
    const chunk = /split_search_route/.test(route.request().url());
    if (chunk && updated) chunkAsked += 1;
    const moduleAsked = !chunk && route.request().method() === 'HEAD';
    return updated && (chunk || moduleAsked) ? route.fulfill({ status: 404, body: 'not found' }) : route.continue();
  });
  // The page's clock is the test's to move on (it flows as usual until then).
  await alice.page.clock.install();
  await alice.page.goto('/chat/search?q=drawn');
  const stale = alice.page.getByRole('alert').filter({ hasText: 'Banter has been updated' });
  await expect(stale).toContainText('Banter has been updated since this page was opened: reload it to open search');
  await expect(stale.getByRole('link', { name: 'Reload' })).toBeVisible();
  await expect(stale.locator('.page-notice')).toBeInViewport();
  await expect(alice.page.getByText('Could not reach Banter')).toHaveCount(0);
  // The page is the server's, and it stays so: its search results are there, and the app stops
  // asking for a chunk that cannot come (it asked again within a second or two before).
  await expect(alice.page.getByRole('main')).toContainText('drawn by the server');
  // Ten minutes on the page's clock, the timers of every retry fired: no request goes out. Then
  // one that the test makes itself comes back, so any request the page made before it was seen.
  const asked = chunkAsked;
  await alice.page.clock.runFor('10:00');
  expect(await alice.page.evaluate(async () => (await fetch('/healthz')).status)).toBe(200);
  expect(chunkAsked).toBe(asked);
  await expect(alice.page.locator('body')).not.toHaveAttribute('data-hydrated', 'true');
  await expectAccessible(alice.page, 'search-startup-updated');
  await alice.page.screenshot({ path: path.resolve(__dirname, '../screenshots', 'lazy-startup-updated.png') });
  // On a phone, in the dark: still over the page, readable (the audit checks its contrast).
  await alice.page.setViewportSize({ width: 390, height: 780 });
  await alice.page.emulateMedia({ colorScheme: 'dark' });
  await expect(stale.locator('.page-notice')).toBeInViewport();
  await expectAccessible(alice.page, 'search-startup-updated-phone-dark');
  await alice.page.screenshot({ path: path.resolve(__dirname, '../screenshots', 'lazy-startup-updated-phone-dark.png') });

  // Reload (a plain link: the app is not running) loads the new version, which the app takes over.
  updated = false;
  await stale.getByRole('link', { name: 'Reload' }).click();
  await ready(alice.page, info);
  await expect(alice.page).toHaveURL(/\/chat\/search\?q=drawn/);
  await expect(stale).toHaveCount(0);
  await expect(alice.page.getByRole('main')).toContainText('drawn by the server');
  await done(alice, bob);
});

test('looked at again after Banter was updated, an open page says so, asking at most once a minute, and every half hour on screen', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'look-a');
  const bob = await person(browser, info, 'look-b');
  // The page's clock is the test's to move on (it flows as usual until then).
  await alice.page.clock.install();
  await openChat(alice, info, bob);
  await live(alice);
  const notice = alice.page.getByRole('status').filter({ hasText: 'Banter has been updated' });
  // Someone goes to another tab and comes back (what the browser tells the page, as it does).
  const lookAway = (state: 'hidden' | 'visible') =>
    alice.page.evaluate((state) => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => state });
      document.dispatchEvent(new Event('visibilitychange', { bubbles: true }));
    }, state);
  const lookAgain = async () => {
    await lookAway('hidden');
    await lookAway('visible');
  };

  // A new version of Banter is deployed behind a Pusher server that keeps the page's socket: the
  // page is not disconnected, and its WASM module answers 404 from now on.
  let asked = 0;
  await alice.page.route(/\/pkg\/banter\.[^/]*\.wasm/, (route) => {
    if (route.request().method() !== 'HEAD') return route.continue();
    asked += 1;
    return route.fulfill({ status: 404, body: 'not found' });
  });
  await lookAgain();
  await expect(notice).toContainText('Banter has been updated since this page was opened.');
  expect(asked).toBe(1);
  await expect(alice.page.getByText('Back online')).toHaveCount(0);
  await expect(notice.locator('.page-notice')).toBeInViewport();
  await expectAccessible(alice.page, 'chat-updated-looked-at');

  // "Later", and back and forth between tabs at once: the page does not ask again, nor nag.
  await notice.getByRole('button', { name: 'Later' }).click();
  await expect(notice).toHaveCount(0);
  await lookAgain();
  // A request the test makes itself comes back, so any request the page made before it was seen.
  expect(await alice.page.evaluate(async () => (await fetch('/healthz')).status)).toBe(200);
  expect(asked).toBe(1);
  await expect(notice).toHaveCount(0);

  // A minute later, a look at the tab asks again, and the notice is back.
  await alice.page.clock.fastForward('01:01');
  await lookAgain();
  await expect(notice.locator('.page-notice')).toBeVisible();
  expect(asked).toBe(2);
  await send(alice, 'still sending');
  await expect(log(alice.page).getByRole('listitem').filter({ hasText: 'still sending' }).getByLabel('Sent')).toBeVisible();

  // Left on screen and never looked at again (a wall display): half an hour after it opened (a
  // minute of which has passed), the page asks by itself, and the notice put away with "Later" is
  // back; not before.
  await notice.getByRole('button', { name: 'Later' }).click();
  await expect(notice).toHaveCount(0);
  await alice.page.clock.fastForward('28:00');
  expect(await alice.page.evaluate(async () => (await fetch('/healthz')).status)).toBe(200);
  expect(asked).toBe(2);
  await expect(notice).toHaveCount(0);
  await alice.page.clock.fastForward('02:00');
  await expect(notice.locator('.page-notice')).toBeVisible();
  expect(asked).toBe(3);
  await done(alice, bob);
});

test('history: 50 newest first, scrolling up brings the rest in order', { tag: '@js-only' }, async ({ browser }, info) => {
  // The demo accounts come with 120 messages between Alice and Bob.
  execFileSync(path.resolve(__dirname, '../../target/release/server'), ['demo-accounts'], {
    cwd: path.resolve(__dirname, '../..'),
    env: { ...process.env, DATABASE_URL: `sqlite://${process.env.E2E_DB_DIR}/banter.sqlite?mode=rwc`, RUST_LOG: 'warn' },
  });
  const demo = { password: 'banter-demo' };
  const alice = await person(browser, info, 'x', { name: 'Alice', email: 'alice@example.com', ...demo });
  const bob = await person(browser, info, 'x', { name: 'Bob', email: 'bob@example.com', ...demo });

  await openChat(alice, info, bob);
  const bubbles = log(alice.page).locator('.message .body');
  await expect(bubbles).toHaveCount(50);
  await expect(bubbles.last()).toHaveText('Demo message 120 of 120');
  await expect(bubbles.first()).toHaveText('Demo message 71 of 120');

  // It opens scrolled to the newest message.
  const scroller = alice.page.locator('.message-scroller');
  await expect
    .poll(() => scroller.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight))
    .toBeLessThan(2);

  // Scrolling to the top brings the previous page, and the message that was at the top stays in view.
  for (const [count, previousTop] of [[100, 71], [120, 21]] as const) {
    // One scroll to the top; scrolling again while the page loads would move the view itself.
    await scroller.evaluate((el) => el.scrollTo(0, 0));
    await expect(bubbles).toHaveCount(count);
    await expect(bubbles.getByText(`Demo message ${previousTop} of 120`, { exact: true })).toBeInViewport();
  }
  const texts = await bubbles.allTextContents();
  expect(texts).toEqual(Array.from({ length: 120 }, (_, i) => `Demo message ${i + 1} of 120`));
  await expect(alice.page.getByRole('button', { name: 'Load older messages' })).toHaveCount(0);
  await alice.context.close();
  await bob.context.close();
});

test('links in messages open safely in a new tab', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'link-a');
  const bob = await person(browser, info, 'link-b');
  await openChat(alice, info, bob);
  await send(alice, 'docs at https://example.com/guide.');
  const link = log(alice.page).getByRole('link', { name: 'https://example.com/guide' });
  await expect(link).toHaveAttribute('rel', 'noopener noreferrer');
  await expect(link).toHaveAttribute('target', '_blank');
  await alice.context.close();
  await bob.context.close();
});

test('screenshots of the chat: light and dark, desktop and mobile', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'shot-a');
  const bob = await person(browser, info, 'shot-b');
  await openChat(bob, info, alice);
  await send(bob, 'Hi! Did you see the new release notes? https://example.com/notes');
  await expect(log(bob.page).getByLabel('Sent')).toBeVisible();
  await openChat(alice, info, bob);
  await send(alice, 'Yes, reading them now.\nThe dark theme looks great.');
  // Bob has the conversation open, so it is read at once.
  await expect(log(alice.page).getByLabel('Read').last()).toBeVisible();

  const dir = path.resolve(__dirname, '../screenshots');
  for (const scheme of ['light', 'dark'] as const) {
    await alice.page.emulateMedia({ colorScheme: scheme });
    for (const [device, size] of [['desktop', { width: 1280, height: 800 }], ['mobile', { width: 390, height: 800 }]] as const) {
      await alice.page.setViewportSize(size);
      const file = path.join(dir, `chat-${scheme}-${device}.png`);
      await alice.page.screenshot({ path: file });
      await info.attach(`chat-${scheme}-${device}`, { path: file, contentType: 'image/png' });
    }
  }
  await alice.context.close();
  await bob.context.close();
});

test('the theme toggle is remembered, and Esc closes a conversation on a narrow screen', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'theme-a');
  const bob = await person(browser, info, 'theme-b');
  await alice.page.emulateMedia({ colorScheme: 'light' });
  await openChat(alice, info, bob);
  await alice.page.getByRole('button', { name: 'Switch to dark theme' }).click();
  await expect(alice.page.locator('html')).toHaveAttribute('data-theme', 'dark');
  await openChat(alice, info, bob);
  await expect(alice.page.locator('html')).toHaveAttribute('data-theme', 'dark');
  await expect(alice.page.getByRole('button', { name: 'Switch to light theme' })).toBeVisible();

  await alice.page.setViewportSize({ width: 390, height: 800 });
  await alice.page.getByLabel('Message', { exact: true }).press('Escape');
  await expect(alice.page).toHaveURL(/\/chat$/);
  await expect(alice.page.getByRole('complementary', { name: 'Contacts' })).toBeVisible();
  await alice.context.close();
  await bob.context.close();
});

test('a send refused by the server stays as not sent, and Retry delivers it once', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'retry-a');
  const bob = await person(browser, info, 'retry-b');
  await openChat(alice, info, bob);

  // The server says no (as when rate-limited): the message stays, marked, with the reason.
  await alice.page.route('**/api/messages/send', (route) =>
    route.fulfill({
      status: 429,
      contentType: 'application/json',
      body: JSON.stringify({ kind: 'rate_limited', message: 'slow down: try again in 3 seconds', retry_after_secs: 3 }),
    }),
  );
  await send(alice, 'refused at first');
  const item = log(alice.page).getByRole('listitem').filter({ hasText: 'refused at first' });
  await expect(item.getByText('Not sent.')).toBeVisible();
  await expect(alice.page.getByRole('alert')).toContainText('slow down: try again in 3 seconds');

  await alice.page.unroute('**/api/messages/send');
  await item.getByRole('button', { name: 'Retry' }).click();
  await expect(item.getByLabel('Sent')).toBeVisible();

  await openChat(bob, info, alice);
  await expect(log(bob.page).getByRole('listitem').filter({ hasText: 'refused at first' })).toHaveCount(1);
  await alice.context.close();
  await bob.context.close();
});

test('a message written offline waits in the outbox and goes out by itself once back online', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'outbox-a');
  const bob = await person(browser, info, 'outbox-b');
  await openChat(alice, info, bob);

  await alice.context.setOffline(true);
  await send(alice, 'first, written offline');
  await send(alice, 'second, written offline');
  const first = log(alice.page).getByRole('listitem').filter({ hasText: 'first, written offline' });
  const second = log(alice.page).getByRole('listitem').filter({ hasText: 'second, written offline' });
  await expect(first).toContainText('waiting for connection');
  await expect(second).toContainText('waiting for connection');

  await alice.context.setOffline(false);
  await expect(first.getByLabel('Sent')).toBeVisible();
  await expect(second.getByLabel('Sent')).toBeVisible();

  await openChat(bob, info, alice);
  const bodies = await log(bob.page).locator('.message .body').allInnerTexts();
  expect(bodies).toEqual(['first, written offline', 'second, written offline']);
  await alice.context.close();
  await bob.context.close();
});

test('back online after Banter was updated, an open page says so, and Reload brings the new version', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'deploy-a');
  const bob = await person(browser, info, 'deploy-b');
  await openChat(alice, info, bob);
  await live(alice);
  const notice = alice.page.getByRole('status').filter({ hasText: 'Banter has been updated' });
  const dropAndReconnect = async () => {
    await alice.context.setOffline(true);
    await expect(alice.page.getByText('Offline — messages will be sent')).toBeVisible();
    await alice.context.setOffline(false);
    await live(alice);
  };

  // Connected again to the same version: the page asks, and has nothing to say beyond "Back online".
  const asked = alice.page.waitForResponse((r) => /\/pkg\/banter\.[^/]*\.wasm/.test(r.url()) && r.request().method() === 'HEAD');
  await dropAndReconnect();
  expect((await asked).status()).toBe(200);
  await expect(alice.page.getByText('Back online')).toBeVisible();
  await expect(notice).toHaveCount(0);
  // The notice's live region is there, empty, before it has anything to say: a screen reader
  // announces what a region comes to hold, not a region that comes with it.
  const region = alice.page.locator('.page-notice-live[role="status"]');
  await expect(region).toBeAttached();
  await expect(region).toBeEmpty();

  // A new version is deployed while the page is open (its WASM module answers 404 from now on):
  // connected again, the page says so, and the chat goes on meanwhile.
  let updated = true;
  await alice.page.route(/\/pkg\/banter\.[^/]*\.wasm/, (route) =>
    updated && route.request().method() === 'HEAD' ? route.fulfill({ status: 404, body: 'not found' }) : route.continue(),
  );
  await dropAndReconnect();
  await expect(notice).toContainText('Banter has been updated since this page was opened.');
  await expect(notice.locator('.page-notice')).toBeInViewport();
  // Not over the composer.
  const composer = await alice.page.getByLabel('Message', { exact: true }).boundingBox();
  const box = await notice.locator('.page-notice').boundingBox();
  expect(box!.y + box!.height).toBeLessThan(composer!.y);
  await send(alice, 'sent after the update');
  await expect(log(alice.page).getByRole('listitem').filter({ hasText: 'sent after the update' }).getByLabel('Sent')).toBeVisible();
  await expectAccessible(alice.page, 'chat-updated');
  await alice.page.screenshot({ path: path.resolve(__dirname, '../screenshots', 'chat-updated.png') });
  // Over the conversation, beside the contact list, however wide the window.
  const contacts = alice.page.getByRole('complementary', { name: 'Contacts' });
  for (const width of [1280, 1000, 760]) {
    await alice.page.setViewportSize({ width, height: 720 });
    const list = (await contacts.boundingBox())!;
    const over = (await notice.locator('.page-notice').boundingBox())!;
    expect(over.x).toBeGreaterThan(list.x + list.width);
    expect(over.x + over.width).toBeLessThanOrEqual(width);
  }

  // On a phone, in the dark: still clear of the composer and readable.
  await alice.page.setViewportSize({ width: 390, height: 780 });
  await alice.page.emulateMedia({ colorScheme: 'dark' });
  const phoneComposer = await alice.page.getByLabel('Message', { exact: true }).boundingBox();
  const phoneBox = await notice.locator('.page-notice').boundingBox();
  expect(phoneBox!.y + phoneBox!.height).toBeLessThan(phoneComposer!.y);
  await expectAccessible(alice.page, 'chat-updated-phone-dark');
  await alice.page.screenshot({ path: path.resolve(__dirname, '../screenshots', 'chat-updated-phone-dark.png') });

  // "Later" puts it away; the next reconnect asks again.
  await notice.getByRole('button', { name: 'Later' }).click();
  await expect(notice).toHaveCount(0);
  await dropAndReconnect();
  await expect(notice.locator('.page-notice')).toBeVisible();

  // Reload, by keyboard: a new page, from the new version, with nothing more to say.
  updated = false;
  await alice.page.evaluate(() => ((window as unknown as { beforeReload: boolean }).beforeReload = true));
  await notice.getByRole('button', { name: 'Reload' }).focus();
  const reloaded = alice.page.waitForEvent('load');
  await alice.page.keyboard.press('Enter');
  await reloaded;
  await ready(alice.page, info);
  expect(await alice.page.evaluate(() => (window as unknown as { beforeReload?: boolean }).beforeReload ?? false)).toBe(false);
  await expect(notice).toHaveCount(0);
  await expect(log(alice.page)).toContainText('sent after the update');
  await done(alice, bob);
});
