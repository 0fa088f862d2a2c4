// Three Banter instances behind nginx, on one PostgreSQL database and one Redis
// (scripts/cluster.sh, started by playwright.config.ts in failover mode): nginx's main port sends
// everything to instance 1 while it is up, and its pinned port reaches instance 2 alone. So Alice
// (main port) and Bob (pinned to instance 2) hold their sockets on different instances, and
// stopping instance 1 sends Alice through nginx to another one.
import { expect, test, type Page } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { contactRow, done, live, log, openChat, person, send } from './chat-support';

const clusterDir = process.env.E2E_CLUSTER_DIR ?? '';
const clusterPort = Number(process.env.E2E_CLUSTER_PORT ?? 0);
const shot = (name: string) => path.resolve(__dirname, '../screenshots', name);
const item = (page: Page, text: string) =>
  log(page).getByRole('listitem').filter({ has: page.locator('.body').getByText(text, { exact: true }) });

/** The process id of instance `i`, as scripts/cluster.sh wrote it. */
function instancePid(i: number): number {
  return Number(fs.readFileSync(path.join(clusterDir, `instance-${i}.pid`), 'utf8').trim());
}

test.describe.configure({ mode: 'serial' });

test('two browsers on different instances chat live, and one instance going away loses nothing', async ({ browser }, info) => {
  test.setTimeout(90_000);
  const alice = await person(browser, info, 'cluster-a', undefined, `http://127.0.0.1:${clusterPort}`);
  const bob = await person(browser, info, 'cluster-b', undefined, `http://127.0.0.1:${clusterPort + 12}`);
  let aliceSockets = 0;
  alice.page.on('websocket', () => { aliceSockets += 1; });
  await openChat(bob, info, alice);
  await live(bob);
  await openChat(alice, info, bob);
  await live(alice);

  // Live both ways, with receipts.
  await send(alice, 'across the cluster');
  await expect(item(bob.page, 'across the cluster')).toBeVisible();
  await expect(item(alice.page, 'across the cluster').getByLabel('Read')).toBeVisible();
  await send(bob, 'received on instance 2');
  await expect(item(alice.page, 'received on instance 2')).toBeVisible();

  // Online across instances (partners now), and typing.
  await expect(alice.page.getByTestId('peer-status')).toHaveText('online');
  await expect(contactRow(bob.page, alice.name).getByLabel('online')).toBeVisible();
  await bob.page.getByLabel('Message', { exact: true }).pressSequentially('hel');
  await expect(alice.page.locator('.typing')).toHaveText(`${bob.name} is typing…`);
  await alice.page.screenshot({ path: shot('cluster-alice.png') });

  // Instance 1 (Alice's) is stopped: it closes her socket with 4200, she reconnects through
  // nginx to another instance, and what Bob sends meanwhile reaches her exactly once.
  expect(aliceSockets).toBe(1);
  const first = instancePid(1);
  process.kill(first, 'SIGTERM');
  await send(bob, 'sent while Alice moved');
  // Her page opened a second socket (the first was closed, 4200), and instance 1 is gone.
  await expect.poll(() => aliceSockets).toBe(2);
  await expect.poll(() => { try { process.kill(first, 0); return 'running'; } catch { return 'gone'; } }).toBe('gone');
  await expect(item(alice.page, 'sent while Alice moved')).toHaveCount(1);
  await live(alice);
  await send(alice, 'back on another instance');
  await expect(item(bob.page, 'back on another instance')).toHaveCount(1);
  await send(bob, 'and live again');
  await expect(item(alice.page, 'and live again')).toHaveCount(1);
  await expect(alice.page.getByTestId('peer-status')).toHaveText('online');
  expect(await log(alice.page).locator('.message .body').allInnerTexts()).toEqual([
    'across the cluster',
    'received on instance 2',
    'sent while Alice moved',
    'back on another instance',
    'and live again',
  ]);
  await done(alice, bob);
});

const instance = (i: number) => `http://127.0.0.1:${clusterPort + 10 + i}`;

test('signing out on one instance cuts the live feed of a tab whose socket is on another', async ({ browser }, info) => {
  const carol = await person(browser, info, 'cluster-c', undefined, instance(3));
  const dave = await person(browser, info, 'cluster-d', undefined, instance(2));
  await openChat(carol, info, dave);
  await live(carol);
  // The same browser (the session cookie is the host's, whatever the port) signs out on instance 2.
  const other = await carol.context.newPage();
  await other.goto(`${instance(2)}/chat`);
  await other.getByRole('button', { name: 'Sign out' }).click();
  await expect(other).toHaveURL(/\/login$/);
  // Instance 3 closed Carol's socket (4009: no reconnect), told over Redis within a second.
  await expect(carol.page.locator('.chat-layout')).toHaveAttribute('data-live', 'failed', { timeout: 5_000 });
  // Nothing sent to her reaches that tab any more, and the session is gone on every instance.
  await openChat(dave, info, carol);
  await send(dave, 'after the sign-out');
  await expect(item(dave.page, 'after the sign-out')).toBeVisible();
  const answer = await carol.context.request.post(`${instance(3)}/api/session`, { headers: { accept: 'application/json' } });
  expect(answer.status()).toBe(401);
  await expect(item(carol.page, 'after the sign-out')).toHaveCount(0);
  await done(carol, dave);
});

test('the send and sign-in limits count across instances', async ({ browser }, info) => {
  // Twenty sends and seven page loads through the cluster: 14 s alone, past 30 s once in a full
  // run on this shared machine.
  test.setTimeout(90_000);
  const erin = await person(browser, info, 'cluster-e', undefined, instance(2));
  const frank = await person(browser, info, 'cluster-f', undefined, instance(3));
  // 20 sends per 10 s per person: 10 through instance 2 and 10 through instance 3 use it up...
  for (let n = 0; n < 20; n += 1) {
    const response = await erin.context.request.post(`${instance(2 + (n % 2))}/api/messages/send`, {
      form: { recipient_id: String(frank.id), body: `burst ${n}`, client_id: `burst-${Date.now()}-${n}` },
      headers: { accept: 'application/json' },
    });
    expect(response.status(), await response.text()).toBe(200);
  }
  // ...so the next one, typed in the page on instance 3, is refused and says when to try again.
  await erin.page.goto(`${instance(3)}/chat/${frank.id}`);
  await expect(erin.page.locator('.message-scroller')).toHaveAttribute('data-interactive', 'true');
  await send(erin, 'one too many');
  await expect(erin.page.getByRole('alert')).toContainText(/slow down: try again in \d+ seconds?/);

  // Five wrong passwords, spread over instances 2 and 3, lock the account on both.
  const signIn = async (base: string, password: string) => {
    const page = await browser.newPage();
    await page.goto(`${base}/login`);
    await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
    await page.getByLabel('Email').fill(frank.email);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    return page;
  };
  for (let n = 0; n < 5; n += 1) {
    const page = await signIn(instance(2 + (n % 2)), 'not the password');
    await expect(page.getByRole('alert')).toHaveText('email or password is wrong');
    await page.close();
  }
  const locked = await signIn(instance(2), frank.password);
  await expect(locked.getByRole('alert')).toContainText(/too many failed sign-ins: try again in \d+/);
  await locked.screenshot({ path: shot('cluster-sign-in-limit.png') });
  await locked.close();
  await done(erin, frank);
});
