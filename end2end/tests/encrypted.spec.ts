// End-to-end encrypted channels (`private-encrypted-…`) against the official Pusher SDKs, both
// ways, and a master key rotated under open pages. Runs in the `encrypted` project only, whose
// server has PUSHER_ENCRYPTION_MASTER_KEY_BASE64 set (playwright.config.ts).
import { expect, test, type APIRequestContext } from '@playwright/test';
import Pusher from 'pusher-js';
import type { Channel } from 'pusher-js';
import PusherServer from 'pusher';
import { done, live, log, openChat, person, send, type Person } from './chat-support';
import { E2E_MASTER_KEY, appWithExternalPusher } from './server-support';

test.describe.configure({ mode: 'parallel' });

const appId = 'banter-e2e';
const key = 'banter-e2e-key';
const secret = 'banter-e2e-secret';

const item = (p: Person, text: string) =>
  log(p.page).getByRole('listitem').filter({ has: p.page.locator('.body').getByText(text, { exact: true }) });

/** `from` sends `to` a message over the HTTP API; resolves with the stored message. */
async function sendByApi(from: Person, to: Person, body: string): Promise<Record<string, unknown>> {
  const response = await from.context.request.post('/api/messages/send', {
    form: { recipient_id: String(to.id), body, client_id: `enc-${Date.now()}-${Math.random().toString(36).slice(2)}` },
    headers: { accept: 'application/json' },
  });
  expect(response.ok(), await response.text()).toBeTruthy();
  return response.json();
}

/** The port of the server this project's tests talk to. */
function port(): number {
  return Number(new URL(test.info().project.use.baseURL as string).port);
}

/** The official Node SDK as a backend would use it, encrypting with `masterKeyBase64`. */
function nodeSdk(masterKeyBase64: string): PusherServer {
  return new PusherServer({
    appId,
    key,
    secret,
    host: '127.0.0.1',
    port: String(port()),
    useTLS: false,
    encryptionMasterKeyBase64: masterKeyBase64,
  });
}

/** What `p`'s page does about its channel's key from now on: its auth requests, its console. */
function watchKey(p: Person): { requests: string[]; console: string[] } {
  const seen = { requests: [] as string[], console: [] as string[] };
  p.page.on('request', (r) => {
    if (r.url().endsWith('/broadcasting/auth') && (r.postData() ?? '').includes(`private-encrypted-user.${p.id}`)) {
      seen.requests.push(r.postData() ?? '');
    }
  });
  p.page.on('console', (m) => seen.console.push(m.text()));
  return seen;
}

test('pusher-js decrypts what Banter publishes, with the shared secret from /broadcasting/auth', async ({ browser }, info) => {
  const alice = await person(browser, info, 'enc-js-a');
  const bob = await person(browser, info, 'enc-js-b');
  const channelName = `private-encrypted-user.${bob.id}`;
  const auths: Array<Record<string, string>> = [];
  // Bob's session, from Node: pusher-js's auth requests go to Banter's endpoint with his cookie.
  const request: APIRequestContext = bob.context.request;
  const client = new Pusher(key, {
    cluster: 'embedded', // required by pusher-js 8; wsHost takes precedence
    wsHost: '127.0.0.1',
    wsPort: port(),
    forceTLS: false,
    enabledTransports: ['ws'],
    channelAuthorization: {
      customHandler: async ({ socketId, channelName }, callback) => {
        const response = await request.post('/broadcasting/auth', {
          form: { socket_id: socketId, channel_name: channelName },
          headers: { accept: 'application/json' },
        });
        const answer = await response.json();
        // A copy: pusher-js deletes shared_secret from the object it is given once it has the key.
        auths.push({ ...answer });
        if (response.ok()) callback(null, answer);
        else callback(new Error(JSON.stringify(answer)), null);
      },
    },
  });
  try {
    const channel: Channel = client.subscribe(channelName);
    await new Promise<void>((resolve, reject) => {
      channel.bind('pusher:subscription_succeeded', () => resolve());
      channel.bind('pusher:subscription_error', (e: unknown) => reject(new Error(JSON.stringify(e))));
    });
    expect(auths[0].shared_secret).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    const received = new Promise<Record<string, unknown>>((resolve) => channel.bind('NewChatMessage', resolve));
    const stored = await sendByApi(alice, bob, 'decrypted by pusher-js 🔐');
    expect(await received).toEqual(stored);
  } finally {
    client.disconnect();
  }
  await done(alice, bob);
});

test("Banter's browser client decrypts what the official Node SDK publishes", async ({ browser }, info) => {
  const alice = await person(browser, info, 'enc-sdk-a');
  const bob = await person(browser, info, 'enc-sdk-b');
  await openChat(bob, info, alice);
  await live(bob);
  const stored = await sendByApi(alice, bob, 'the original words');
  await expect(item(bob, 'the original words')).toBeVisible();

  // A backend holding the same master key (Laravel, say) publishes an edit with the Node SDK.
  const sdk = nodeSdk(E2E_MASTER_KEY);
  const edited = { ...stored, body: 'words the Node SDK encrypted', edited_at: new Date().toISOString() };
  await sdk.trigger(`private-encrypted-user.${bob.id}`, 'MessageUpdated', edited);
  await expect(item(bob, 'words the Node SDK encrypted')).toBeVisible();
  await expect(item(bob, 'the original words')).toHaveCount(0);
  await done(alice, bob);
});

test('events sealed with a key nobody hands out are never shown; the page asks once more, then catches up', async ({ browser }, info) => {
  const alice = await person(browser, info, 'enc-bad-a');
  const bob = await person(browser, info, 'enc-bad-b');
  const keyUse = watchKey(bob);
  await openChat(bob, info, alice);
  await live(bob);
  await expect.poll(() => keyUse.requests.length).toBe(1);

  const stored = await sendByApi(alice, bob, 'a real message');
  await expect(item(bob, 'a real message')).toBeVisible();
  const forger = nodeSdk(Buffer.from('another-key-nobody-hands-out-32b').toString('base64'));
  await forger.trigger(`private-encrypted-user.${bob.id}`, 'MessageUpdated', { ...stored, body: 'forged words' });
  // The page asks for the key again (it may have been rotated), still cannot open it, and falls
  // back to the catch-up fetch; the ciphertext and the forged words are never shown.
  await expect.poll(() => keyUse.requests.length).toBe(2);
  await expect.poll(() => keyUse.console.some((w) => w.includes('did not decrypt even with a fresh key'))).toBe(true);
  await expect(item(bob, 'a real message')).toBeVisible();
  await expect(log(bob.page)).not.toContainText('forged words');
  await expect(log(bob.page)).not.toContainText('ciphertext');
  // Live delivery goes on.
  await sendByApi(alice, bob, 'still live afterwards');
  await expect(item(bob, 'still live afterwards')).toBeVisible();
  await done(alice, bob);
});

test('a rotated master key: open pages ask for the new key and go on without a reload', async ({ browser }, info) => {
  // The pages' sockets go to a separate Pusher server that stays up, so they live through the
  // app server's restart with a new key; the next events come sealed with it.
  const credentials = { PUSHER_APP_ID: '778', PUSHER_APP_KEY: 'rotation-e2e-key', PUSHER_APP_SECRET: 'rotation-e2e-secret' };
  const { app, pusher } = await appWithExternalPusher(credentials);
  try {
    const alice = await person(browser, info, 'rotate-a', undefined, app.url);
    const bob = await person(browser, info, 'rotate-b', undefined, app.url);
    const sockets: string[] = [];
    bob.page.on('websocket', (ws) => sockets.push(ws.url()));
    const keyUse = watchKey(bob);
    await openChat(alice, info, bob);
    await openChat(bob, info, alice);
    await live(alice);
    await live(bob);
    await send(alice, 'under the first key');
    await expect(item(bob, 'under the first key')).toBeVisible();

    await app.restartWith({ PUSHER_ENCRYPTION_MASTER_KEY_BASE64: Buffer.from('the-second-master-key-32-bytes!!').toString('base64') });
    expect(keyUse.requests).toHaveLength(1);
    await send(alice, 'under the second key');
    await expect(item(bob, 'under the second key')).toBeVisible();
    // Shown live because Bob's page asked for the key again and opened it, not by the fallback.
    expect(keyUse.requests).toHaveLength(2);
    expect(keyUse.console.filter((w) => w.includes('asking for the key again'))).toHaveLength(1);
    expect(keyUse.console.filter((w) => w.includes('even with a fresh key'))).toEqual([]);
    await send(bob, 'and back');
    await expect(item(alice, 'and back')).toBeVisible();
    expect(sockets).toHaveLength(1); // the same socket all along: no reload, no reconnect
    await done(alice, bob);
  } finally {
    await app.down();
    await pusher.down();
  }
});
