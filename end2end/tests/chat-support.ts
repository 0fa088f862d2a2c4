// Shared steps for the chat specs: people with their own signed-in browser context.
import { expect, type Browser, type BrowserContext, type Page, type TestInfo } from '@playwright/test';
import { newAccount, ready, type Account } from './helpers';

/** `errors`: uncaught errors of the person's pages (a panic in the WASM app shows up there). */
export type Person = Account & { id: number; context: BrowserContext; page: Page; errors: string[] };

/** A signed-in browser context of its own, with a fresh account. */
export async function person(
  browser: Browser,
  info: TestInfo,
  prefix: string,
  account?: Account,
  baseURL?: string,
): Promise<Person> {
  const context = await browser.newContext({
    baseURL: baseURL ?? info.project.use.baseURL,
    javaScriptEnabled: info.project.use.javaScriptEnabled,
  });
  const acc = account ?? newAccount(prefix);
  let response = await context.request.post('/api/auth/register', {
    form: { name: acc.name, email: acc.email, password: acc.password, password_confirmation: acc.password },
    headers: { accept: 'application/json' },
  });
  if (response.status() === 400) {
    response = await context.request.post('/api/auth/login', {
      form: { email: acc.email, password: acc.password },
      headers: { accept: 'application/json' },
    });
  }
  expect(response.ok(), await response.text()).toBeTruthy();
  const user = await response.json();
  const page = await context.newPage();
  // A panic in the WASM app (a hydration mismatch, say) is printed with the test that met it;
  // openChat then fails waiting for the conversation to become interactive.
  const errors: string[] = [];
  page.on('pageerror', (e) => {
    errors.push(e.message);
    console.log(`[${acc.name}] page error: ${e.message}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error') console.log(`[${acc.name}] console error: ${m.text().slice(0, 500)}`);
  });
  if (process.env.E2E_DEBUG_WS) {
    page.on('websocket', (ws) => {
      ws.on('framesent', (f) => console.log(`[${acc.name}] >> ${String(f.payload).slice(0, 160)}`));
      ws.on('framereceived', (f) => console.log(`[${acc.name}] << ${String(f.payload).slice(0, 160)}`));
    });
  }
  return { ...acc, id: user.id, context, page, errors };
}

export async function openChat(p: Person, info: TestInfo, peer?: Person) {
  await p.page.goto(peer ? `/chat/${peer.id}` : '/chat');
  await ready(p.page, info);
  if (peer && info.project.use.javaScriptEnabled !== false) {
    // The conversation hydrates inside a Suspense boundary, after the page itself.
    await expect(p.page.locator('.message-scroller')).toHaveAttribute('data-interactive', 'true');
  }
}

export async function send(p: Person, text: string) {
  const box = p.page.getByLabel('Message', { exact: true });
  await box.fill(text);
  await box.press('Enter');
}

/** `from` sends `to` a message over the HTTP API (no page involved) and returns it; a 429 is
 * waited out as the server says. `extra`: more form fields (`reply_to_id`). */
export async function sendByApi(from: Person, to: Person, body: string, extra: Record<string, string> = {}) {
  const form = { recipient_id: String(to.id), body, client_id: `api-${Date.now()}-${Math.random().toString(36).slice(2)}`, ...extra };
  for (;;) {
    const response = await from.context.request.post('/api/messages/send', { form, headers: { accept: 'application/json' } });
    if (response.status() === 429) {
      const { retry_after_secs } = await response.json();
      await new Promise((resolve) => setTimeout(resolve, retry_after_secs * 1000));
      continue;
    }
    expect(response.ok(), await response.text()).toBeTruthy();
    return response.json();
  }
}

export const log = (page: Page) => page.getByRole('log');
/** A row of the contact list (not the "Search messages for …" link above it, which may name the same text). */
export const contactRow = (page: Page, name: string) =>
  page.getByRole('complementary', { name: 'Contacts' }).locator('.contact-list').getByRole('link', { name });


/** Cuts `p`'s page off from the chunks of the app whose paths match `chunks`, as if offline, until
 * the returned line's `reachable` is set; from then on each waits `slow` ms before it comes. */
export async function chunkLine(p: Person, chunks: RegExp) {
  const line = { reachable: false, slow: 0 };
  await p.page.route(chunks, async (route) => {
    if (!line.reachable) return route.abort('internetdisconnected');
    await new Promise((resolve) => setTimeout(resolve, line.slow));
    return route.continue();
  });
  return line;
}

/** Waits until the tab's realtime connection is up and subscribed to the user's channel. */
export async function live(p: Person) {
  await expect(p.page.locator('.chat-layout')).toHaveAttribute('data-live', 'connected');
}

/** Ends a test's people: none of their pages may have met an uncaught error (a WASM panic). */
export async function done(...people: Person[]) {
  for (const p of people) {
    expect(p.errors, `${p.name}'s page errors`).toEqual([]);
    await p.context.close();
  }
}

/** `owner` makes a group of themselves and `members` over the HTTP API; returns its room id. */
export async function createGroupByApi(owner: Person, name: string, members: Person[]): Promise<number> {
  const ids = members.map((m) => `member_ids[]=${m.id}`).join('&');
  const created = await owner.context.request.post('/api/groups/create', {
    data: `name=${encodeURIComponent(name)}&${ids}`,
    headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
  });
  expect(created.ok(), await created.text()).toBeTruthy();
  return (await created.json()).id;
}
